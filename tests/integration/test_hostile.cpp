// The security model, tried as a hostile container author would (docs/security.md): each case is an attack
// that must fail against the built hooks, with nothing left on the host.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start)
{
	return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

TEST_SUITE("hostile")
{
	TEST_CASE("every hook ends: a state pipe left open")
	{
		Sandbox sb("stdin-open");
		sb.start_test_vmm({"--vcpus", "1"});
		for (const char *stage : {"create-runtime", "poststart", "poststop"}) {
			CAPTURE(stage);
			auto start = Clock::now();
			HookRun run = sb.run(stage, sb.state(), false);
			CHECK(seconds_since(start) < 15);
			CHECK(run.status == 2);
			CHECK(run.err.find("not closed within") != std::string::npos);
		}
		CHECK(sb.overhead_gone());
		CHECK_FALSE(fs::exists(sb.record_file()));
	}

	TEST_CASE("every hook ends: config.json as a FIFO, or a symbolic link to /proc/kmsg or a device")
	{
		Sandbox sb("bundle-files");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string spec = sb.bundle_dir() + "/config.json";
		auto hostile = [&](const std::function<void()> &make, const char *needle) {
			fs::remove(spec);
			make();
			auto start = Clock::now();
			HookRun run = sb.create_runtime();
			CHECK(seconds_since(start) < 5);
			CHECK(run.status == 2);
			CHECK_MESSAGE(run.err.find(needle) != std::string::npos, run.err);
			CHECK(sb.overhead_gone());
			CHECK_FALSE(fs::exists(sb.record_file()));
		};
		hostile([&] { REQUIRE(::mkfifo(spec.c_str(), 0600) == 0); }, "not a regular file");
		hostile([&] { fs::create_symlink("/proc/kmsg", spec); }, "symbolic link");
		hostile([&] { fs::create_symlink("/dev/zero", spec); }, "symbolic link");
		hostile([&] { fs::create_directory(spec); }, "not a regular file");
		// poststart without a record reads config.json too, to tell a container that did not ask.
		fs::remove_all(spec);
		REQUIRE(::mkfifo(spec.c_str(), 0600) == 0);
		auto start = Clock::now();
		CHECK(sb.poststart().status == 2);
		CHECK(seconds_since(start) < 5);
		fs::remove(spec);
	}

	TEST_CASE("logs cannot be forged: a newline in a refused annotation, a 200 KB value")
	{
		Sandbox sb("forge");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string forged =
			"x\\nvmm-cgroup-hooks poststop id=some-other-container: info: cleaned up";
		sb.annotate(R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.mode":")" + forged +
			    R"(","io.vmm-cgroup-hooks.qmp-socket":")" + std::string(200000, 'a') + R"("})");
		HookRun created = sb.create_runtime();
		CHECK(created.status == 0);
		// Every line the hook wrote is its own: no forged one, none longer than the bound.
		std::size_t lines = 0, start = 0;
		while (start < created.err.size()) {
			std::size_t end = created.err.find('\n', start);
			std::string line = created.err.substr(start, end - start);
			CHECK(line.starts_with("vmm-cgroup-hooks createRuntime id=" + sb.id() + ": "));
			CHECK(line.size() < 2200);
			++lines;
			start = end == std::string::npos ? created.err.size() : end + 1;
		}
		CHECK(lines >= 2); // the two refusals
		CHECK(created.err.find("\nvmm-cgroup-hooks poststop") == std::string::npos);
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
	}
}
