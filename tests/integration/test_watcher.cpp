// The watcher: after placement, new threads of a placed VMM are placed by themselves (a hot-plugged vCPU),
// and the process events it sleeps on.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <doctest/doctest.h>

#include "harness.h"
#include "proc_events.h"

using namespace vmmcg::test;

TEST_SUITE("watcher")
{
	TEST_CASE("the process events connector reports this process's new thread, and nothing of others")
	{
		auto events = vmmcg::ProcEvents::open();
		REQUIRE_MESSAGE(events, "the proc connector is refused here (needs CAP_NET_ADMIN)");
		REQUIRE(events->watch({::getpid()}));
		pid_t tid = 0;
		std::thread([&] { tid = ::gettid(); }).join();
		bool lost = false, seen = false;
		auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
		while (!seen && std::chrono::steady_clock::now() < deadline)
			for (const auto &event : events->wait(std::chrono::milliseconds(200), lost))
				seen |= event.kind == vmmcg::ProcEvent::Kind::fork && event.pid == tid &&
					event.tgid == ::getpid();
		CHECK(seen);
		// The filter passes only the watched thread groups: the fork that made a child is ours and is
		// reported, but nothing the child does after (its exec, its threads, their names).
		REQUIRE(events->watch({::getpid()}));
		Sandbox sb("events-other");
		pid_t other = sb.start_test_vmm({"--vcpus", "2"});
		std::size_t of_child = 0;
		for (const auto &event : events->wait(std::chrono::milliseconds(300), lost))
			if (event.tgid == other && event.parent_tgid != ::getpid())
				++of_child;
		CHECK(of_child == 0);
	}

	TEST_CASE("no poststop came: once the container is dead and S removed, the watcher cleans up")
	{
		Sandbox sb("orphan");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		REQUIRE_FALSE(sb.record()["watcher"].is_null());
		sb.kill_vmm();
		// While S is there the container may still be deleted by its runtime, with poststop: nothing
		// goes.
		std::this_thread::sleep_for(std::chrono::milliseconds(1500));
		CHECK(std::filesystem::exists(sb.record_file()));
		CHECK_FALSE(sb.overhead_gone());
		REQUIRE(sb.remove_sandbox());
		// The watcher looks once a second, at idle priority: on a loaded machine (CI's) its turn may
		// come seconds late. 30 s is half its 60 s window; a pass comes as soon as it gets the CPU.
		CHECK(wait_until(
			[&] { return !std::filesystem::exists(sb.record_file()) && sb.overhead_gone(); },
			30000));
		CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 10000));
		CHECK(sb.poststop().status == 0); // late, and idempotent
	}

	TEST_CASE("the watcher outlives the settler's alarm: a vCPU plugged 24 s after poststart is placed")
	{
		// The settler's alarm is settle_timeout_ms + the stage bound (20 s): with 1 s here, 21 s.
		// Every watcher used to die of it (SIGALRM), however long its VMM ran.
		Sandbox sb("outlive");
		sb.configure(R"("settle_timeout_ms":1000)");
		sb.start_test_vmm({"--vcpus", "2", "--hotplug-ms", "24000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto watcher = sb.watcher();
		REQUIRE(watcher);
		vmmcg::ProcessRef ref = *watcher;
		std::this_thread::sleep_for(std::chrono::seconds(23));
		CHECK(vmmcg::ProcFs().alive(ref));
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 3; }, 1000 + 10000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a vCPU hot-plugged after placement is placed within a second, with no command")
	{
		Sandbox sb("hotplug");
		sb.start_test_vmm({"--vcpus", "2", "--hotplug-ms", "1500"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto record = sb.record();
		REQUIRE_FALSE(record["watcher"].is_null());
		// The new vCPU is made by the main thread, in O: the watcher moves it to S.
		auto placed = [&] {
			std::size_t vcpus = 0;
			for (const auto &t : sb.threads()) {
				if (!is_vcpu_name(t.name))
					continue;
				++vcpus;
				for (const auto &c : Sandbox::cpu_controllers())
					if (t.where.at(c) != sb.sandbox_path())
						return false;
			}
			return vcpus == 3;
		};
		// Placed by the event of its creation, or by the 1 s tick at the latest; the bound is
		// generous because the watcher runs at idle priority and CI's machine is loaded (how fast:
		// the value benchmark's figures).
		CHECK(wait_until(placed, 1500 + 10000));
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 3; }, 5000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}
