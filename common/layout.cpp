#include "layout.h"

#include <algorithm>
#include <set>

#include "errors.h"
#include "paths.h"

namespace vmmcg {

bool cgroup_v1::Hierarchy::has(std::string_view controller) const
{
	return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

std::string cgroup_v2::Layout::vcpu() const
{
	return join_path(sandbox, "vcpu");
}

std::string cgroup_v2::Layout::overhead() const
{
	return join_path(sandbox, "overhead");
}

namespace {

// The overhead root and each of its ancestors, parents first.
std::vector<std::string> shared_dirs(const std::string &root)
{
	std::vector<std::string> dirs;
	for (std::size_t slash = root.find('/', 1); slash != std::string::npos;
	     slash = root.find('/', slash + 1))
		dirs.push_back(root.substr(0, slash));
	dirs.push_back(root);
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

cgroup_v1::Hierarchy v1_hierarchy(const LayoutInput &input, const std::string &controller,
				  const std::string &mount)
{
	cgroup_v1::Hierarchy hierarchy;
	hierarchy.mount = mount;
	hierarchy.controllers = {controller};
	hierarchy.proc_key = controller;
	hierarchy.sandbox = sandbox_of(input, controller, controller);
	hierarchy.overhead = join_path(input.overhead_root, input.id);
	hierarchy.shared = shared_dirs(input.overhead_root);
	return hierarchy;
}

cgroup_v1::Layout v1_layout(const LayoutInput &input)
{
	if (is_interface_file_name(input.id))
		throw InputError(
			"container id '" + input.id +
			"' is the name of a cgroup interface file: it cannot name an overhead cgroup");
	cgroup_v1::Layout layout;
	for (const auto &controller : input.overhead_controllers) {
		auto mount = input.mounts.v1.find(controller);
		if (mount == input.mounts.v1.end())
			throw InputError("overhead controller '" + controller +
					 "' is not mounted on this host");
		auto &list = layout.hierarchies;
		auto same = std::find_if(list.begin(), list.end(),
					 [&](const auto &h) { return h.mount == mount->second; });
		if (same != list.end())
			same->controllers.push_back(controller); // co-mounted, e.g. cpu,cpuacct
		else
			list.push_back(v1_hierarchy(input, controller, mount->second));
	}
	return layout;
}

} // namespace

CgroupLayout compute_layout(const LayoutInput &input)
{
	if (input.mode == Mode::sandbox_only)
		return {};
	if (input.host != HostMode::v2)
		return v1_layout(input);
	// Without S (poststop with no record) the v2 children cannot be found: nothing to compute.
	if (input.sandbox.empty())
		return {};
	cgroup_v2::Layout layout;
	layout.mount = input.mounts.unified;
	layout.sandbox = sandbox_of(input, "", "cgroup2");
	return layout;
}

} // namespace vmmcg
