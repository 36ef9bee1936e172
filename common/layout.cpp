#include "layout.h"

#include <algorithm>
#include <set>

#include "errors.h"
#include "paths.h"

namespace vmmcg {

namespace {

// The overhead root and each of its ancestors, shared, then the container's own overhead cgroup.
std::vector<CgroupDir> overhead_dirs(const std::string &root, const std::string &id)
{
	std::vector<CgroupDir> dirs;
	for (std::size_t slash = root.find('/', 1); slash != std::string::npos;
	     slash = root.find('/', slash + 1))
		dirs.push_back({root.substr(0, slash), true, false});
	dirs.push_back({root, true, false});
	dirs.push_back({join_path(root, id), false, false});
	return dirs;
}

std::string sandbox_of(const LayoutInput &input, const std::string &key, const std::string &what)
{
	if (input.sandbox.empty())
		return {}; // computing what to remove: S is not needed
	auto it = input.sandbox.find(key);
	if (it == input.sandbox.end())
		throw InputError("the container's process is in no cgroup of the " + what + " hierarchy");
	if (it->second == "/")
		throw InputError("the container's process is in the root cgroup of the " + what +
				 " hierarchy: refusing to split it");
	return it->second;
}

// The names of a cgroup directory's interface files: "tasks", "cgroup.procs", "cpu.shares", ... A container
// id like that would make O the overhead root's own file, not a cgroup.
bool is_interface_file_name(const std::string &name)
{
	static const std::set<std::string, std::less<>> plain = {"tasks", "notify_on_release",
								 "release_agent"};
	static const std::set<std::string, std::less<>> prefixes = {
		"cgroup",  "cpu",     "cpuacct", "cpuset",  "memory",   "io",         "blkio", "pids",
		"devices", "freezer", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma",  "misc"};
	std::size_t dot = name.find('.');
	return plain.contains(name) || (dot != std::string::npos && prefixes.contains(name.substr(0, dot)));
}

std::vector<Target> v1_targets(const LayoutInput &input)
{
	if (is_interface_file_name(input.id))
		throw InputError(
			"container id '" + input.id +
			"' is the name of a cgroup interface file: it cannot name an overhead cgroup");
	std::vector<Target> targets;
	for (const auto &controller : input.overhead_controllers) {
		auto mount = input.mounts.v1.find(controller);
		if (mount == input.mounts.v1.end())
			throw InputError("overhead controller '" + controller +
					 "' is not mounted on this host");
		auto same_mount = [&](const Target &t) { return t.mount == mount->second; };
		if (auto it = std::find_if(targets.begin(), targets.end(), same_mount); it != targets.end()) {
			it->controllers += "," + controller; // co-mounted, e.g. cpu,cpuacct
			continue;
		}
		Target target;
		target.mount = mount->second;
		target.controllers = controller;
		target.sandbox = sandbox_of(input, controller, controller);
		target.vcpu = target.sandbox;
		target.overhead = join_path(input.overhead_root, input.id);
		target.create = overhead_dirs(input.overhead_root, input.id);
		targets.push_back(std::move(target));
	}
	return targets;
}

Target v2_target(const LayoutInput &input)
{
	Target target;
	target.mount = input.mounts.unified;
	target.controllers = "unified";
	target.v2 = true;
	target.sandbox = sandbox_of(input, "", "cgroup2");
	target.vcpu = join_path(target.sandbox, "vcpu");
	target.overhead = join_path(target.sandbox, "overhead");
	target.create = {{target.vcpu, false, true}, {target.overhead, false, true}};
	return target;
}

} // namespace

Layout compute_layout(const LayoutInput &input)
{
	Layout layout;
	layout.host = input.host;
	layout.mode = input.mode;
	if (input.mode == Mode::sandbox_only)
		return layout;
	if (input.host == HostMode::v2) {
		// Without S (poststop with no record) the v2 children cannot be found: nothing to compute.
		if (!input.sandbox.empty())
			layout.targets.push_back(v2_target(input));
		return layout;
	}
	// Hybrid hosts: the v1 hierarchies hold the controllers; the unified mount only tracks processes.
	layout.targets = v1_targets(input);
	return layout;
}

} // namespace vmmcg
