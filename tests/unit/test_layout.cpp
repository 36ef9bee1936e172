#include "layout.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;

namespace {

const std::string id = "abc";

// A v1 host with cpu, cpuacct and cpuset on separate mounts.
Mounts split_mounts()
{
	Mounts mounts;
	mounts.v1 = {{"cpu", "/sys/fs/cgroup/cpu"},       {"cpuacct", "/sys/fs/cgroup/cpuacct"},
		     {"cpuset", "/sys/fs/cgroup/cpuset"}, {"memory", "/sys/fs/cgroup/memory"},
		     {"pids", "/sys/fs/cgroup/pids"},     {"devices", "/sys/fs/cgroup/devices"}};
	return mounts;
}

// The usual systemd layout: cpu and cpuacct co-mounted.
Mounts comounted_mounts()
{
	Mounts mounts;
	mounts.v1 = {{"cpu", "/sys/fs/cgroup/cpu,cpuacct"},
		     {"cpuacct", "/sys/fs/cgroup/cpu,cpuacct"},
		     {"cpuset", "/sys/fs/cgroup/cpuset"},
		     {"memory", "/sys/fs/cgroup/memory"}};
	return mounts;
}

ProcCgroups v1_sandbox()
{
	return {{"cpu", "/machine/abc"},         {"cpuacct", "/machine/abc"}, {"cpuset", "/machine/abc-set"},
		{"memory", "/machine/abc"},      {"pids", "/machine/abc"},    {"devices", "/machine/abc"},
		{"name=systemd", "/machine/abc"}};
}

LayoutInput v1_input(HostMode host = HostMode::v1)
{
	LayoutInput input;
	input.host = host;
	input.mode = Mode::split;
	input.id = id;
	input.overhead_root = "/vmm_overhead";
	input.overhead_controllers = {"cpu", "cpuacct", "cpuset"};
	input.mounts = split_mounts();
	if (host == HostMode::hybrid)
		input.mounts.unified = "/sys/fs/cgroup/unified";
	input.sandbox = v1_sandbox();
	if (host == HostMode::hybrid)
		input.sandbox.emplace("", "/machine/abc");
	return input;
}

LayoutInput v2_input()
{
	LayoutInput input;
	input.host = HostMode::v2;
	input.mode = Mode::split;
	input.id = id;
	input.overhead_root = "/vmm_overhead";
	input.overhead_controllers = {"cpu", "cpuacct", "cpuset"};
	input.mounts.unified = "/sys/fs/cgroup";
	input.sandbox = {{"", "/machine.slice/libpod-abc.scope"}};
	return input;
}

const Target *find_target(const Layout &layout, const std::string &controllers)
{
	for (const auto &target : layout.targets)
		if (target.controllers == controllers)
			return &target;
	return nullptr;
}

void check_overhead_dirs(const Target &target, const std::string &root)
{
	REQUIRE(target.create.size() == 2);
	CHECK(target.create[0].path == root);
	CHECK(target.create[0].shared);
	CHECK_FALSE(target.create[0].threaded);
	CHECK(target.create[1].path == root + "/" + id);
	CHECK_FALSE(target.create[1].shared);
	CHECK_FALSE(target.create[1].threaded);
}

} // namespace

TEST_SUITE("layout")
{
	TEST_CASE("v1 and hybrid split, separate mounts: one target per controller")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			Layout layout = compute_layout(v1_input(host));
			CHECK(layout.host == host);
			CHECK(layout.mode == Mode::split);
			REQUIRE(layout.targets.size() == 3);
			const char *expected[][3] = {{"cpu", "/sys/fs/cgroup/cpu", "/machine/abc"},
						     {"cpuacct", "/sys/fs/cgroup/cpuacct", "/machine/abc"},
						     {"cpuset", "/sys/fs/cgroup/cpuset", "/machine/abc-set"}};
			for (std::size_t i = 0; i < 3; ++i) {
				const Target &target = layout.targets[i];
				CAPTURE(target.controllers);
				CHECK(target.controllers == expected[i][0]);
				CHECK(target.mount == expected[i][1]);
				CHECK_FALSE(target.v2);
				CHECK(target.sandbox == expected[i][2]);
				CHECK(target.vcpu == target.sandbox);
				CHECK(target.overhead == "/vmm_overhead/abc");
				check_overhead_dirs(target, "/vmm_overhead");
			}
			// Memory, pids, devices and the unified mount are left alone.
			for (const auto &target : layout.targets) {
				CHECK(target.mount != "/sys/fs/cgroup/memory");
				CHECK(target.mount != "/sys/fs/cgroup/unified");
			}
		}
	}

	TEST_CASE("v1 split, co-mounted cpu,cpuacct: one target for both")
	{
		LayoutInput input = v1_input();
		input.mounts = comounted_mounts();
		Layout layout = compute_layout(input);
		REQUIRE(layout.targets.size() == 2);
		const Target *cpu = find_target(layout, "cpu,cpuacct");
		REQUIRE(cpu);
		CHECK(cpu->mount == "/sys/fs/cgroup/cpu,cpuacct");
		CHECK(cpu->sandbox == "/machine/abc");
		CHECK(cpu->overhead == "/vmm_overhead/abc");
		check_overhead_dirs(*cpu, "/vmm_overhead");
		const Target *cpuset = find_target(layout, "cpuset");
		REQUIRE(cpuset);
		CHECK(cpuset->mount == "/sys/fs/cgroup/cpuset");
		CHECK(cpuset->sandbox == "/machine/abc-set");
	}

	TEST_CASE("v1 split, only the configured controllers")
	{
		LayoutInput input = v1_input();
		input.overhead_controllers = {"cpuset"};
		Layout layout = compute_layout(input);
		REQUIRE(layout.targets.size() == 1);
		CHECK(layout.targets[0].controllers == "cpuset");
		CHECK(layout.targets[0].mount == "/sys/fs/cgroup/cpuset");
	}

	TEST_CASE("v1 split, nested overhead root: every ancestor is shared")
	{
		LayoutInput input = v1_input();
		input.overhead_root = "/a/b";
		input.overhead_controllers = {"cpu"};
		Layout layout = compute_layout(input);
		REQUIRE(layout.targets.size() == 1);
		const Target &target = layout.targets[0];
		CHECK(target.overhead == "/a/b/abc");
		REQUIRE(target.create.size() == 3);
		CHECK(target.create[0].path == "/a");
		CHECK(target.create[0].shared);
		CHECK(target.create[1].path == "/a/b");
		CHECK(target.create[1].shared);
		CHECK(target.create[2].path == "/a/b/abc");
		CHECK_FALSE(target.create[2].shared);
		for (const auto &dir : target.create)
			CHECK_FALSE(dir.threaded);

		input.overhead_root = "/x/y/z";
		Layout deeper = compute_layout(input);
		REQUIRE(deeper.targets[0].create.size() == 4);
		CHECK(deeper.targets[0].create[0].path == "/x");
		CHECK(deeper.targets[0].create[1].path == "/x/y");
		CHECK(deeper.targets[0].create[2].path == "/x/y/z");
		CHECK(deeper.targets[0].create[3].path == "/x/y/z/abc");
	}

	TEST_CASE("v1 and hybrid: a controller that is not mounted")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			LayoutInput input = v1_input(host);
			input.mounts.v1.erase("cpuset");
			CHECK_INPUT_ERROR(compute_layout(input), "'cpuset'");
			CHECK_INPUT_ERROR(compute_layout(input), "not mounted");
		}
	}

	TEST_CASE("v1 and hybrid: the container is in no cgroup of a hierarchy")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			LayoutInput input = v1_input(host);
			input.sandbox.erase("cpuacct");
			CHECK_INPUT_ERROR(compute_layout(input), "cpuacct");
			CHECK_INPUT_ERROR(compute_layout(input), "no cgroup");
		}
	}

	TEST_CASE("v1 and hybrid: the container in the root cgroup is refused")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			LayoutInput input = v1_input(host);
			input.sandbox["cpu"] = "/";
			CHECK_INPUT_ERROR(compute_layout(input), "root cgroup");
		}
	}

	TEST_CASE("v1 and hybrid without the container's cgroups: targets with an empty sandbox")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			LayoutInput input = v1_input(host);
			input.sandbox.clear();
			Layout layout = compute_layout(input);
			REQUIRE(layout.targets.size() == 3);
			for (const auto &target : layout.targets) {
				CAPTURE(target.controllers);
				CHECK(target.sandbox.empty());
				CHECK(target.vcpu.empty());
				CHECK(target.overhead == "/vmm_overhead/abc");
				check_overhead_dirs(target, "/vmm_overhead");
			}
		}
	}

	TEST_CASE("v1: a container id that names a file of the overhead root is refused")
	{
		// "tasks" is a valid runtime id, but <overhead_root>/tasks is the overhead root's tasks file:
		// mkdir gives EEXIST, provision() takes it for an adopted cgroup, and everything after fails
		// on ENOTDIR.
		for (const char *bad :
		     {"tasks", "cgroup.procs", "notify_on_release", "cpu.shares", "cpuset.cpus"}) {
			CAPTURE(bad);
			LayoutInput input = v1_input();
			input.id = bad;
			CHECK_INPUT_ERROR(compute_layout(input), bad);
		}
	}

	TEST_CASE("v2 split: threaded children of S")
	{
		Layout layout = compute_layout(v2_input());
		CHECK(layout.host == HostMode::v2);
		CHECK(layout.mode == Mode::split);
		REQUIRE(layout.targets.size() == 1);
		const Target &target = layout.targets[0];
		CHECK(target.v2);
		CHECK(target.mount == "/sys/fs/cgroup");
		CHECK(target.controllers == "unified");
		CHECK(target.sandbox == "/machine.slice/libpod-abc.scope");
		CHECK(target.vcpu == "/machine.slice/libpod-abc.scope/vcpu");
		CHECK(target.overhead == "/machine.slice/libpod-abc.scope/overhead");
		REQUIRE(target.create.size() == 2);
		CHECK(target.create[0].path == target.vcpu);
		CHECK(target.create[1].path == target.overhead);
		for (const auto &dir : target.create) {
			CAPTURE(dir.path);
			CHECK(dir.threaded);
			CHECK_FALSE(dir.shared);
		}
	}

	TEST_CASE("v2 split: the overhead root and the v1 mounts play no part")
	{
		LayoutInput input = v2_input();
		input.overhead_root = "/a/b";
		input.overhead_controllers = {"cpuset"};
		Layout layout = compute_layout(input);
		REQUIRE(layout.targets.size() == 1);
		CHECK(layout.targets[0].overhead == "/machine.slice/libpod-abc.scope/overhead");
		for (const auto &dir : layout.targets[0].create)
			CHECK(dir.path.find("/a/b") != 0);
	}

	TEST_CASE("v2 split: S missing or the root")
	{
		LayoutInput input = v2_input();
		input.sandbox = {{"cpu", "/x"}};
		CHECK_INPUT_ERROR(compute_layout(input), "cgroup2");
		input.sandbox = {{"", "/"}};
		CHECK_INPUT_ERROR(compute_layout(input), "root cgroup");
	}

	TEST_CASE("v2 without the container's cgroups (cleanup): no targets")
	{
		LayoutInput input = v2_input();
		input.sandbox.clear();
		Layout layout = compute_layout(input);
		CHECK(layout.host == HostMode::v2);
		CHECK(layout.mode == Mode::split);
		CHECK(layout.targets.empty());
	}

	TEST_CASE("sandbox-only: no targets on any host")
	{
		for (LayoutInput input : {v1_input(HostMode::v1), v1_input(HostMode::hybrid), v2_input()}) {
			CAPTURE(to_string(input.host));
			input.mode = Mode::sandbox_only;
			Layout layout = compute_layout(input);
			CHECK(layout.mode == Mode::sandbox_only);
			CHECK(layout.host == input.host);
			CHECK(layout.targets.empty());
			// Nothing is looked up, so nothing can be wrong.
			input.mounts = {};
			input.sandbox = {{"", "/"}};
			CHECK(compute_layout(input).targets.empty());
		}
	}
}
