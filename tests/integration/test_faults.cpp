// Faults and bad input against the real hooks: nothing half done, nothing left behind.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "config.h"
#include "backend.h"
#include "discovery.h"
#include "harness.h"
#include "placement.h"
#include "record.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;
using namespace std::chrono_literals;

TEST_SUITE("integration-faults")
{
	TEST_CASE("createRuntime that fails midway removes what it created and writes no record")
	{
		Sandbox sb("midway");
		// The cpu and cpuacct cgroups are made first; the cpuset limit then fails (no CPU 63 here).
		sb.configure(R"("overhead_limits":{"cpuset_cpus":"63"})");
		sb.start_test_vmm({"--vcpus", "2"});
		HookRun created = sb.create_runtime();
		CHECK(created.status == 1);
		CHECK(created.err.find("cpuset.cpus") != std::string::npos);
		CHECK(sb.overhead_gone());
		for (const char *c : {"cpu", "cpuacct", "cpuset"})
			CHECK(!fs::exists(std::string("/sys/fs/cgroup/") + c + sb.overhead_root()));
		CHECK(!fs::exists(sb.record_file()));
	}

	TEST_CASE("the VMM exits between createRuntime and poststart")
	{
		Sandbox sb("vmmgone");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		std::string state = sb.state();
		sb.kill_vmm();
		HookRun started = sb.run("poststart", state);
		CHECK_MESSAGE(started.status != 0, started.err); // the container's process is gone: an error
		CHECK(started.err.find("'pid'") != std::string::npos);
		CHECK(sb.run("poststop", state).status == 0);
		CHECK(sb.overhead_gone());
	}

	// The settler, or any second placement, must not move the VMM's group to O again: that took the vCPU
	// threads out of S until its pass put them back (seen as a flaky churn test below).
	TEST_CASE("a second placement of a placed VMM moves nothing")
	{
		Sandbox sb("again");
		sb.start_test_vmm({"--vcpus", "3"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		// poststart, or the settler when a loaded machine made poststart hand over.
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		auto record = vmmcg::read_record(sb.record_dir(), sb.instance(), sb.id());
		REQUIRE(record);
		vmmcg::ProcFs proc;
		auto vmm = proc.process(sb.vmm());
		REQUIRE(vmm);
		std::unique_ptr<vmmcg::Backend> backend = vmmcg::make_backend(record->cgroups);
		REQUIRE(backend);
		std::error_code ec;
		vmmcg::TaskDir tasks(proc, vmm->pid);
		auto listed = vmmcg::list_threads(tasks, vmmcg::Config().vcpu_thread_patterns, ec);
		REQUIRE_FALSE(ec);
		vmmcg::Moves moves =
			backend->place(proc, *vmm, tasks, listed,
				       std::chrono::steady_clock::now() + std::chrono::seconds(5));
		CHECK(moves.moved == 0);
		CHECK_FALSE(moves.vmm_gone);
		CHECK(std::count_if(listed.begin(), listed.end(),
				    [](const auto &t) { return t.vcpu.has_value(); }) == 3);
		for (const auto &t : sb.threads())
			CHECK(t.where.at("cpu") ==
			      (is_vcpu_name(t.name) ? sb.sandbox_path() : sb.overhead_path()));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE("vCPU threads that come and go during placement do not fail poststart")
	{
		Sandbox sb("churn");
		sb.start_test_vmm({"--vcpus", "2", "--churn-vcpus"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		// The steady threads are placed; churned ones may be anywhere while they live.
		for (const auto &t : sb.threads()) {
			if (t.name.rfind("CPU 9", 0) == 0)
				continue;
			bool vcpu = is_vcpu_name(t.name);
			CHECK(t.where.at("cpu") == (vcpu ? sb.sandbox_path() : sb.overhead_path()));
		}
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("poststop without createRuntime exits 0 and touches nothing")
	{
		Sandbox sb("nocreate");
		sb.start_test_vmm({"--vcpus", "1"});
		HookRun stopped = sb.poststop();
		CHECK_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("poststop as podman runs it: no pid")
	{
		Sandbox sb("nopid");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		auto state = nlohmann::json::parse(sb.state());
		state.erase("pid");
		CHECK(sb.run("poststop", state.dump()).status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a VMM that is not in the container's cgroups is refused")
	{
		Sandbox sb("escaped");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		// Move the VMM out of S in the cpu hierarchy, to S's parent (not this container's).
		std::string parent = sb.sandbox_path().substr(0, sb.sandbox_path().rfind('/'));
		std::ofstream("/sys/fs/cgroup/cpu" + parent + "/cgroup.procs") << sb.vmm();
		HookRun started = sb.poststart();
		CHECK(started.status == 1);
		CHECK(started.err.find("refusing") != std::string::npos);
		for (const auto &t : sb.threads())
			CHECK(t.where.at("cpuset") == sb.sandbox_path()); // nothing moved anywhere
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("the VMM killed while the settler is placing it: the settler waits for poststop, which "
		  "ends it "
		  "and cleans")
	{
		Sandbox sb("killsettle");
		sb.start_test_vmm({"--vcpus", "2", "--vcpu-delay-ms", "2000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		auto running = sb.settler();
		REQUIRE(running);
		vmmcg::ProcessRef settler = *running;
		sb.kill_vmm();
		// S is still there, so the runtime may yet run poststop: the settler stays named in the
		// record (settler or watcher) and moves nothing.
		std::this_thread::sleep_for(500ms);
		auto record = sb.record();
		bool named = false;
		for (const char *key : {"settler", "watcher"})
			named |= record[key].is_object() && record[key]["pid"] == settler.pid;
		CHECK((named || !vmmcg::ProcFs().alive(settler)));
		CHECK(sb.poststop().status == 0);
		CHECK(wait_until([&] { return !vmmcg::ProcFs().alive(settler); }, 2000));
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_file()));
	}

	TEST_CASE("poststop racing a late settler: the settler is ended first and writes nothing after")
	{
		Sandbox sb("race");
		// Late enough that poststart (200 ms budget, and 100 ms of quiet after the vCPUs appear)
		// hands over to the settler even when sanitizers slow the hooks down.
		sb.start_test_vmm({"--vcpus", "3", "--vcpu-delay-ms", "600"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		auto running = sb.settler();
		REQUIRE(running);
		vmmcg::ProcessRef settler = *running;
		HookRun stopped = sb.poststop(); // while the settler is waiting for or placing the vCPUs
		CHECK_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(!vmmcg::ProcFs().alive(settler));
		std::this_thread::sleep_for(std::chrono::milliseconds(900)); // past when the vCPUs appear
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_file()));
		CHECK(fs::is_empty(sb.record_dir())); // no temp file either
	}

	TEST_CASE("the record directory cannot be written: createRuntime fails and leaves nothing")
	{
		Sandbox sb("norecord");
		sb.configure(R"("record_dir":"/proc/vmmcg-no-such-dir")");
		sb.start_test_vmm({"--vcpus", "2"});
		HookRun created = sb.create_runtime();
		CHECK(created.status == 1);
		CHECK(created.err.find("/proc/vmmcg-no-such-dir") != std::string::npos);
		CHECK(sb.overhead_gone());
		for (const char *c : {"cpu", "cpuacct", "cpuset"})
			CHECK(!fs::exists(std::string("/sys/fs/cgroup/") + c + sb.overhead_root()));
	}

	TEST_CASE("the overhead cgroup deleted by someone else before poststop: poststop still succeeds")
	{
		Sandbox sb("deleted");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		sb.kill_vmm();
		for (const auto &c : Sandbox::cpu_controllers()) {
			std::string path = "/sys/fs/cgroup/" + c + sb.overhead_path();
			CHECK(wait_until([&] { return ::rmdir(path.c_str()) == 0; }, 2000));
		}
		HookRun stopped = sb.poststop();
		CHECK_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(!fs::exists(sb.record_file()));
	}

	TEST_CASE("bad input: one line naming the problem, exit 2, nothing created")
	{
		Sandbox sb("badinput");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string good_bundle = nlohmann::json::parse(sb.state())["bundle"];
		std::string vmm = std::to_string(sb.vmm());
		// A pair, not a structured binding: clang 14 cannot capture bindings in doctest's INFO
		// lambda.
		for (const auto &input : std::vector<std::pair<std::string, std::string>>{
			     {"", "not valid JSON"},
			     {"{\"id\":", "not valid JSON"},
			     {"[]", "JSON object"},
			     {R"({"bundle":")" + good_bundle + R"(","pid":)" + vmm + "}", "'id'"},
			     {R"({"id":"../x","bundle":")" + good_bundle + R"(","pid":)" + vmm + "}", "'id'"},
			     {R"({"id":"a/b","bundle":")" + good_bundle + R"(","pid":)" + vmm + "}", "'id'"},
			     {R"({"id":"x","pid":)" + vmm + "}", "'bundle'"},
			     {R"({"id":"x","bundle":")" + good_bundle + R"(","pid":-1})", "'pid'"},
			     {R"({"id":"x","bundle":")" + good_bundle + R"(","pid":"12"})", "'pid'"},
			     {R"({"id":"x","bundle":")" + good_bundle + R"(","pid":0})", "'pid'"},
			     {R"({"id":"x","bundle":")" + good_bundle + R"(","pid":999999999})", "'pid'"},
			     {R"({"id":"x","bundle":"/nonexistent-vmmcg","pid":)" + vmm + "}", "config.json"},
		     }) {
			const auto &[state, expect] = input;
			HookRun created = sb.run("create-runtime", state);
			INFO("state: " << input.first << "\nstderr: " << created.err);
			CHECK(created.status == 2);
			CHECK(created.err.find(expect) != std::string::npos);
			CHECK(std::count(created.err.begin(), created.err.end(), '\n') == 1);
		}
		HookRun oversized = sb.run("create-runtime", std::string(2 << 20, ' '));
		CHECK(oversized.status == 2);
		CHECK(oversized.err.find("larger than") != std::string::npos);
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_dir()));
	}

	TEST_CASE("a cgroupsPath that climbs out of the root is bad input")
	{
		Sandbox sb("climb");
		sb.start_test_vmm({"--vcpus", "1"});
		for (const char *path : {"/a/../../etc", "../x", "/a//b"}) {
			sb.set_cgroups_path(path);
			HookRun created = sb.create_runtime();
			INFO(path << ": " << created.err);
			CHECK(created.status == 2);
			CHECK(created.err.find("linux.cgroupsPath") != std::string::npos);
		}
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("an unknown configuration key is named, exit 2")
	{
		Sandbox sb("badconfig");
		sb.configure(R"("overhead_rot":"/x")");
		sb.start_test_vmm({"--vcpus", "1"});
		HookRun created = sb.create_runtime();
		CHECK(created.status == 2);
		CHECK(created.err.find("'overhead_rot'") != std::string::npos);
		CHECK(sb.overhead_gone());
	}
}
