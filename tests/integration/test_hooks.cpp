// The three hooks on the host's real cgroupfs, with a real multithreaded VMM (the test VMM, and QEMU).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;

namespace {

// Split mode on v1: in the CPU hierarchies vCPU threads are in S and every other thread in O; in every
// other hierarchy all threads stay in S.
void check_split(const Sandbox &sb, std::size_t expected_vcpus)
{
	auto threads = sb.threads();
	REQUIRE(!threads.empty());
	std::size_t vcpus = 0;
	for (const auto &t : threads) {
		bool vcpu = is_vcpu_name(t.name);
		vcpus += vcpu;
		for (const auto &c : Sandbox::cpu_controllers()) {
			INFO("thread " << t.tid << " '" << t.name << "' in " << c);
			CHECK(t.where.at(c) == (vcpu ? sb.sandbox_path() : sb.overhead_path()));
		}
		for (const auto &c : Sandbox::other_controllers()) {
			INFO("thread " << t.tid << " '" << t.name << "' in " << c);
			CHECK(t.where.at(c) == sb.sandbox_path());
		}
	}
	CHECK(vcpus == expected_vcpus);
}

void check_all_in_sandbox(const Sandbox &sb)
{
	for (const auto &t : sb.threads())
		for (const auto &entry :
		     t.where) // no structured binding: clang 14 cannot capture one in INFO
			if (entry.first != "" && entry.first.rfind("name=", 0) != 0) {
				INFO("thread " << t.tid << " '" << t.name << "' in " << entry.first);
				CHECK(entry.second == sb.sandbox_path());
			}
}

} // namespace

TEST_SUITE("integration")
{
	TEST_CASE("split mode places the VMM in O and its vCPU threads in S, poststop removes O")
	{
		Sandbox sb("split");
		sb.start_test_vmm({"--vcpus", "4", "--io-threads", "3"});
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		// cpuset of the new overhead cgroup is seeded from its parent, or it would refuse tasks.
		std::ifstream cpus("/sys/fs/cgroup/cpuset" + sb.overhead_path() + "/cpuset.cpus");
		std::string seeded;
		cpus >> seeded;
		CHECK(!seeded.empty());
		check_all_in_sandbox(sb); // createRuntime moves nothing

		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		check_split(sb, 4);
		auto record = sb.record();
		CHECK(record["mode"] == "split");
		CHECK(record["vcpus"].size() == 4);
		CHECK(record["vmm"]["pid"] == sb.vmm());

		HookRun stopped = sb.poststop();
		REQUIRE_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_file()));
		// The threads that were in O are back in S, under the container's limits; S is untouched.
		for (const auto &t : sb.threads())
			CHECK(t.where.at("cpu") == sb.sandbox_path());

		SUBCASE("a second poststop has nothing to do")
		{
			HookRun again = sb.poststop();
			CHECK_MESSAGE(again.status == 0, again.err);
			CHECK(again.err.find("no record: nothing to clean") != std::string::npos);
		}
	}

	TEST_CASE("sandbox-only mode moves nothing and creates nothing")
	{
		Sandbox sb("sbonly");
		sb.configure(R"("mode":"sandbox-only")");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		CHECK(sb.overhead_gone());
		REQUIRE(sb.poststart().status == 0);
		check_all_in_sandbox(sb);
		CHECK(sb.record()["mode"] == "sandbox-only");
		REQUIRE(sb.poststop().status == 0);
		CHECK(!fs::exists(sb.record_file()));
	}

	TEST_CASE("an allowed mode annotation switches a container to sandbox-only; a refused one does not")
	{
		Sandbox sb("annot");
		sb.annotate(
			R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.mode":"sandbox-only"})");
		sb.start_test_vmm({"--vcpus", "2"});
		SUBCASE("not allowed: refused and logged, split applies")
		{
			HookRun created = sb.create_runtime();
			REQUIRE(created.status == 0);
			CHECK(created.err.find("refused") != std::string::npos);
			REQUIRE(sb.poststart().status == 0);
			check_split(sb, 2);
		}
		SUBCASE("allowed: sandbox-only applies")
		{
			sb.configure(R"("allowed_annotations":["mode"])");
			REQUIRE(sb.create_runtime().status == 0);
			REQUIRE(sb.poststart().status == 0);
			check_all_in_sandbox(sb);
			CHECK(sb.overhead_gone());
		}
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a container without the enable annotation is left alone")
	{
		Sandbox sb("noannot");
		sb.annotate(R"({"other":"x"})");
		sb.start_test_vmm({"--vcpus", "2"});
		CHECK(sb.create_runtime().status == 0);
		CHECK(sb.poststart().status == 0);
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_file()));
		check_all_in_sandbox(sb);
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE("vCPUs created after poststart are placed by the settler, which then exits")
	{
		Sandbox sb("late");
		sb.start_test_vmm({"--vcpus", "3", "--vcpu-delay-ms", "1000"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		CHECK(started.err.find("settler pid") != std::string::npos);
		REQUIRE(wait_until([&] { return sb.settled(); }));
		check_split(sb, 3);
		REQUIRE(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a container that is no VMM gets no settler, and nothing of it moves")
	{
		Sandbox sb("novmm");
		sb.start({"/bin/sleep", "60"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK(started.status == 0);
		CHECK(started.err.find("no VMM found: nothing moved") != std::string::npos);
		CHECK_FALSE(sb.settler());
		CHECK(sb.record()["vmm"].is_null());
		for (const auto &t : sb.threads())
			for (const auto &c : Sandbox::cpu_controllers())
				CHECK(t.where.at(c) == sb.sandbox_path());
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("poststop ends a settler that is still waiting for a VMM")
	{
		Sandbox sb("lonely");
		// A launcher that never starts a VMM: the settler waits for one.
		sb.start(late_vmm_launcher());
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		auto settler = sb.settler();
		REQUIRE(settler);
		CHECK(vmmcg::ProcFs().alive(*settler));
		HookRun stopped = sb.poststop();
		CHECK_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(wait_until([&] { return !vmmcg::ProcFs().alive(*settler); }, 2000));
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("the settler gives up at its bound and exits")
	{
		Sandbox sb("bound");
		sb.configure(R"("settle_timeout_ms":300)");
		sb.start(late_vmm_launcher());
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		REQUIRE(sb.poststart().status == 0);
		auto settler = sb.settler();
		REQUIRE(settler);
		CHECK(wait_until([&] { return !vmmcg::ProcFs().alive(*settler); }, 5000));
		CHECK(sb.record()["settler"].is_null());
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE("a launcher: the VMM is a child of the container's process")
	{
		Sandbox sb("launcher");
		std::string vmm = build_path("tests/test-vmm");
		sb.start({"/bin/sh", "-c", vmm + " --vcpus 2; exit 0"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		auto has_vmm = [&] {
			return fs::exists(sb.record_file()) && sb.record()["vcpus"].size() == 2 &&
			       sb.record()["settler"].is_null();
		};
		REQUIRE(wait_until(has_vmm));
		pid_t shell = sb.vmm();
		// The shell itself stays in S in every hierarchy: only the VMM is split.
		std::ifstream in("/proc/" + std::to_string(shell) + "/cgroup");
		std::stringstream text;
		text << in.rdbuf();
		CHECK(text.str().find(sb.overhead_path()) == std::string::npos);
		REQUIRE(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}

TEST_SUITE("integration-qemu")
{
	TEST_CASE("real QEMU: -smp 4 with debug-threads, vCPU threads in S and the rest in O")
	{
		std::string qemu = "/usr/bin/qemu-system-x86_64";
		REQUIRE_MESSAGE(fs::exists(qemu), "qemu-system-x86_64 is not installed");
		bool kvm = ::access("/dev/kvm", R_OK | W_OK) == 0;
		MESSAGE("QEMU accelerator: " << std::string(kvm ? "kvm" : "tcg (no usable /dev/kvm)"));
		Sandbox sb("qemu");
		sb.configure(R"("vmm_names":["qemu-system-*"])");
		sb.start({qemu, "-accel", kvm ? "kvm" : "tcg", "-smp", "4", "-m", "128", "-name",
			  "vmmcg,debug-threads=on", "-nographic", "-nodefaults", "-no-user-config",
			  "-display", "none"});
		// QEMU makes its vCPU threads during start-up: createRuntime runs at once, poststart settles.
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		check_split(sb, 4);
		REQUIRE(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}
