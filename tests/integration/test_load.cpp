// Load: many sandboxes through createRuntime, poststart and poststop, several at once, each placement
// checked, and the host left as it was: no cgroup, record file or settler process.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "discovery.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;

namespace {

constexpr int sandboxes = 104;
constexpr int concurrency = 8;

struct Outcome {
	int index;
	std::string failure; // empty when every check passed
	std::optional<vmmcg::ProcessRef> settler;
	// A VMM that makes its vCPUs late, whose poststart ended before they were due: its placement could
	// not be complete, so it must have gone through the settler. (On a loaded machine a poststart can end
	// after they came, and then it placed them itself.)
	bool needs_settler = false;
};

// One sandbox's whole life. Returns what went wrong, if anything (doctest's macros are not thread-safe).
Outcome run_one(int index)
{
	Outcome outcome{index, {}, {}};
	auto fail = [&](const std::string &why) {
		outcome.failure = why;
		return outcome;
	};
	try {
		Sandbox sb("load" + std::to_string(index));
		int vcpus = 4 + index % 5; // 4..8
		std::vector<std::string> args = {"--vcpus", std::to_string(vcpus), "--io-threads", "2"};
		constexpr auto vcpu_delay = std::chrono::milliseconds(1500);
		bool late = index % 4 == 0; // every fourth VMM makes its vCPUs late: the settler's path, even
		if (late) {                 // when sanitizers slow the hooks down
			args.push_back("--vcpu-delay-ms");
			args.push_back(std::to_string(vcpu_delay.count()));
		}
		auto started = std::chrono::steady_clock::now();
		sb.start_test_vmm(args);
		if (HookRun r = sb.create_runtime(); r.status != 0)
			return fail("createRuntime: " + r.err);
		if (HookRun r = sb.poststart(); r.status != 0)
			return fail("poststart: " + r.err);
		outcome.needs_settler = late && std::chrono::steady_clock::now() - started < vcpu_delay;
		outcome.settler = sb.settler();
		bool settled = wait_until([&] {
			auto r = sb.record();
			return r["settler"].is_null() && r["vcpus"].size() == static_cast<std::size_t>(vcpus);
		});
		if (!settled)
			return fail("placement did not settle: " + sb.record().dump());
		for (const auto &t : sb.threads()) {
			bool vcpu = is_vcpu_name(t.name);
			for (const auto &c : Sandbox::cpu_controllers())
				if (t.where.at(c) != (vcpu ? sb.sandbox_path() : sb.overhead_path()))
					return fail("thread " + t.name + " in " + c + ":" + t.where.at(c));
			for (const auto &c : Sandbox::other_controllers())
				if (t.where.at(c) != sb.sandbox_path())
					return fail("thread " + t.name + " in " + c + ":" + t.where.at(c));
		}
		sb.kill_vmm();
		if (HookRun r = sb.poststop(); r.status != 0)
			return fail("poststop: " + r.err);
		if (!sb.overhead_gone())
			return fail("overhead cgroup left");
		if (fs::exists(sb.record_file()))
			return fail("record left");
	} catch (const std::exception &e) {
		outcome.failure = e.what();
	}
	return outcome;
}

} // namespace

TEST_SUITE("load")
{
	TEST_CASE("104 sandboxes with 4-8 vCPUs, 8 at a time, leave nothing behind")
	{
		std::atomic<int> next{0};
		std::mutex mutex;
		std::vector<Outcome> outcomes;
		std::vector<std::thread> workers;
		for (int w = 0; w < concurrency; ++w)
			workers.emplace_back([&] {
				for (int i = next++; i < sandboxes; i = next++) {
					Outcome outcome = run_one(i);
					std::lock_guard lock(mutex);
					outcomes.push_back(std::move(outcome));
				}
			});
		for (auto &worker : workers)
			worker.join();

		REQUIRE(outcomes.size() == sandboxes);
		std::size_t settlers = 0, needing = 0;
		vmmcg::ProcFs proc;
		for (const auto &outcome : outcomes) {
			INFO("sandbox " << outcome.index);
			CHECK(outcome.failure == "");
			if (outcome.needs_settler) {
				++needing;
				CHECK(outcome.settler);
			}
			if (outcome.settler) {
				++settlers;
				// SIGKILLed by poststop, which waits a second for its exit: an idle-class
				// process on a loaded machine may take longer to be scheduled and die.
				for (int i = 0; i < 100 && proc.alive(*outcome.settler); ++i)
					std::this_thread::sleep_for(std::chrono::milliseconds(100));
				CHECK(!proc.alive(*outcome.settler));
			}
		}
		MESSAGE(settlers << " of " << sandboxes << " sandboxes went through the settler (" << needing
				 << " of the " << sandboxes / 4 << " with late vCPUs had to)");
		CHECK(needing >= 1); // the settler's path was taken at all
		CHECK(settlers >= needing);
		// Nothing of this run is left in any hierarchy.
		std::string mine = "vmmcg-it-" + std::to_string(::getpid());
		for (const auto &hierarchy : fs::directory_iterator("/sys/fs/cgroup"))
			for (const auto &entry : fs::directory_iterator(hierarchy.path()))
				CHECK(entry.path().filename().string().rfind(mine, 0) != 0);
	}
}
