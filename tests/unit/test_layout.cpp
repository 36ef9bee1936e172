#include "layout.h"

#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "errors.h"
#include "helpers.h"
#include "paths.h"

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
	input.instance = id;
	input.overhead_parent = OverheadParent::root;
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
	input.instance = id;
	input.overhead_parent = OverheadParent::root;
	input.overhead_root = "/vmm_overhead";
	input.overhead_controllers = {"cpu", "cpuacct", "cpuset"};
	input.mounts.unified = "/sys/fs/cgroup";
	input.sandbox = {{"", "/machine.slice/libpod-abc.scope"}};
	return input;
}

using cgroup_v1::Hierarchy;

const cgroup_v1::Layout &v1_of(const CgroupLayout &layout)
{
	REQUIRE(std::holds_alternative<cgroup_v1::Layout>(layout));
	return std::get<cgroup_v1::Layout>(layout);
}

const cgroup_v2::Layout &v2_of(const CgroupLayout &layout)
{
	REQUIRE(std::holds_alternative<cgroup_v2::Layout>(layout));
	return std::get<cgroup_v2::Layout>(layout);
}

const Hierarchy *find_hierarchy(const cgroup_v1::Layout &layout, const std::vector<std::string> &controllers)
{
	for (const auto &hierarchy : layout.hierarchies)
		if (hierarchy.controllers == controllers)
			return &hierarchy;
	return nullptr;
}

} // namespace

TEST_SUITE("layout")
{
	TEST_CASE("v1 and hybrid split, separate mounts: one hierarchy per controller")
	{
		for (HostMode host : {HostMode::v1, HostMode::hybrid}) {
			CAPTURE(to_string(host));
			CgroupLayout computed = compute_layout(v1_input(host));
			const auto &layout = v1_of(computed);
			REQUIRE(layout.hierarchies.size() == 3);
			const char *expected[][3] = {{"cpu", "/sys/fs/cgroup/cpu", "/machine/abc"},
						     {"cpuacct", "/sys/fs/cgroup/cpuacct", "/machine/abc"},
						     {"cpuset", "/sys/fs/cgroup/cpuset", "/machine/abc-set"}};
			for (std::size_t i = 0; i < 3; ++i) {
				const Hierarchy &h = layout.hierarchies[i];
				CAPTURE(h.mount);
				CHECK(h.controllers == std::vector<std::string>{expected[i][0]});
				CHECK(h.proc_key == expected[i][0]);
				CHECK(h.mount == expected[i][1]);
				CHECK(h.sandbox == expected[i][2]);
				CHECK(h.overhead == "/vmm_overhead/abc");
				CHECK(h.shared == std::vector<std::string>{"/vmm_overhead"});
			}
			// Memory, pids, devices and the unified mount are left alone.
			for (const auto &h : layout.hierarchies) {
				CHECK(h.mount != "/sys/fs/cgroup/memory");
				CHECK(h.mount != "/sys/fs/cgroup/unified");
			}
		}
	}

	TEST_CASE("v1 split, co-mounted cpu,cpuacct: one hierarchy for both")
	{
		LayoutInput input = v1_input();
		input.mounts = comounted_mounts();
		CgroupLayout computed = compute_layout(input);
		const auto &layout = v1_of(computed);
		REQUIRE(layout.hierarchies.size() == 2);
		const Hierarchy *cpu = find_hierarchy(layout, {"cpu", "cpuacct"});
		REQUIRE(cpu);
		CHECK(cpu->mount == "/sys/fs/cgroup/cpu,cpuacct");
		CHECK(cpu->proc_key == "cpu");
		CHECK(cpu->has("cpuacct"));
		CHECK_FALSE(cpu->has("cpuset"));
		CHECK(cpu->sandbox == "/machine/abc");
		CHECK(cpu->overhead == "/vmm_overhead/abc");
		const Hierarchy *cpuset = find_hierarchy(layout, {"cpuset"});
		REQUIRE(cpuset);
		CHECK(cpuset->mount == "/sys/fs/cgroup/cpuset");
		CHECK(cpuset->sandbox == "/machine/abc-set");
	}

	TEST_CASE("v1 split, only the configured controllers")
	{
		LayoutInput input = v1_input();
		input.overhead_controllers = {"cpuset"};
		CgroupLayout computed = compute_layout(input);
		const auto &layout = v1_of(computed);
		REQUIRE(layout.hierarchies.size() == 1);
		CHECK(layout.hierarchies[0].controllers == std::vector<std::string>{"cpuset"});
		CHECK(layout.hierarchies[0].mount == "/sys/fs/cgroup/cpuset");
	}

	TEST_CASE("v1 split, nested overhead root: every ancestor is shared")
	{
		LayoutInput input = v1_input();
		input.overhead_root = "/a/b";
		input.overhead_controllers = {"cpu"};
		CgroupLayout computed = compute_layout(input);
		const Hierarchy &h = v1_of(computed).hierarchies.at(0);
		CHECK(h.overhead == "/a/b/abc");
		CHECK(h.shared == std::vector<std::string>{"/a", "/a/b"});

		input.overhead_root = "/x/y/z";
		CgroupLayout deeper = compute_layout(input);
		CHECK(v1_of(deeper).hierarchies.at(0).shared ==
		      std::vector<std::string>{"/x", "/x/y", "/x/y/z"});
		CHECK(v1_of(deeper).hierarchies.at(0).overhead == "/x/y/z/abc");
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

	TEST_CASE("instance_name: the id and a hash of the bundle; never a cgroup interface file's name")
	{
		std::string a =
			instance_name("abc", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc");
		std::string b =
			instance_name("abc", "/run/containerd/io.containerd.runtime.v2.task/other/abc");
		CHECK(a.starts_with("abc-"));
		CHECK(a.size() == 4 + 16);
		CHECK(a != b); // one id in two containerd namespaces: two instances
		CHECK(a == instance_name("abc", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"));
		CHECK(is_instance_of(a, "abc"));
		CHECK(is_instance_of(b, "abc"));
		CHECK_FALSE(is_instance_of(a, "ab")); // another id's instance: "ab" + "c-..."
		CHECK_FALSE(is_instance_of(instance_name("abc-0", "/b"), "abc"));
		CHECK_FALSE(is_instance_of("abc", "abc"));
		CHECK_FALSE(is_instance_of("abc-0123456789abcdeg", "abc"));
		// "tasks" is a valid runtime id, but <overhead_root>/tasks would be the root's own tasks
		// file.
		for (const char *bad : {"tasks", "cgroup.procs", "notify_on_release", "cpu.shares"}) {
			std::string name = instance_name(bad, "/b");
			CHECK(name.find('-') == std::string(bad).size());
			CHECK(name.size() == std::string(bad).size() + 17);
		}
	}

	TEST_CASE("v1 split beside S (the default): O under S's parent, cpuset from S, nothing shared")
	{
		LayoutInput input = v1_input();
		input.overhead_parent = OverheadParent::sandbox;
		input.instance = "abc-0123456789abcdef";
		CgroupLayout computed = compute_layout(input);
		const auto &layout = v1_of(computed);
		REQUIRE(layout.hierarchies.size() == 3);
		for (const auto &h : layout.hierarchies) {
			CAPTURE(h.mount);
			CHECK(h.overhead == parent_path(h.sandbox) + "/vmm-overhead-abc-0123456789abcdef");
			CHECK(h.cpuset_source == h.sandbox);
			CHECK(h.shared.empty());
		}
		// Below one node-wide root: the root's CPUs.
		input.overhead_parent = OverheadParent::root;
		CgroupLayout rooted = compute_layout(input);
		CHECK(v1_of(rooted).hierarchies[0].cpuset_source == "/vmm_overhead");
		CHECK(v1_of(rooted).hierarchies[0].overhead == "/vmm_overhead/abc-0123456789abcdef");
	}

	TEST_CASE("v2 split: threaded children of S")
	{
		CgroupLayout computed = compute_layout(v2_input());
		const auto &layout = v2_of(computed);
		CHECK(layout.mount == "/sys/fs/cgroup");
		CHECK(layout.sandbox == "/machine.slice/libpod-abc.scope");
		CHECK(layout.vcpu() == "/machine.slice/libpod-abc.scope/vcpu");
		CHECK(layout.overhead() == "/machine.slice/libpod-abc.scope/overhead");
		CHECK(layout.enabled.empty());
		CHECK(layout.saved.empty());
		CHECK_FALSE(layout.relaxed);
	}

	TEST_CASE("v2 split: the overhead root and the v1 mounts play no part")
	{
		LayoutInput input = v2_input();
		input.overhead_root = "/a/b";
		input.overhead_controllers = {"cpuset"};
		CgroupLayout computed = compute_layout(input);
		CHECK(v2_of(computed).overhead() == "/machine.slice/libpod-abc.scope/overhead");
	}

	TEST_CASE("v2 split: S missing or the root")
	{
		LayoutInput input = v2_input();
		input.sandbox = {{"cpu", "/x"}};
		CHECK_INPUT_ERROR(compute_layout(input), "cgroup2");
		input.sandbox = {{"", "/"}};
		CHECK_INPUT_ERROR(compute_layout(input), "root cgroup");
	}

	TEST_CASE("without the container's cgroups: refused on every host")
	{
		for (LayoutInput input : {v1_input(HostMode::v1), v1_input(HostMode::hybrid), v2_input()}) {
			CAPTURE(to_string(input.host));
			input.sandbox.clear();
			CHECK_INPUT_ERROR(compute_layout(input), "no cgroup");
		}
	}

	TEST_CASE("sandbox-only: nothing on any host")
	{
		for (LayoutInput input : {v1_input(HostMode::v1), v1_input(HostMode::hybrid), v2_input()}) {
			CAPTURE(to_string(input.host));
			input.mode = Mode::sandbox_only;
			CHECK(std::holds_alternative<std::monostate>(compute_layout(input)));
			// Nothing is looked up, so nothing can be wrong.
			input.mounts = {};
			input.sandbox = {{"", "/"}};
			CHECK(std::holds_alternative<std::monostate>(compute_layout(input)));
		}
	}
}
