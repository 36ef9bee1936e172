#include "layout.h"

#include <algorithm>
#include <cstdint>

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

std::string instance_name(std::string_view id, std::string_view bundle)
{
	std::uint64_t hash =
		0xcbf29ce484222325ULL; // FNV-1a 64: the bundle path is the engine's, not a tenant's
	for (char c : bundle) {
		hash ^= static_cast<unsigned char>(c);
		hash *= 0x100000001b3ULL;
	}
	static constexpr char hex[] = "0123456789abcdef";
	std::string name(id);
	name += '-';
	for (int shift = 60; shift >= 0; shift -= 4)
		name += hex[(hash >> shift) & 15];
	return name;
}

bool is_instance_of(std::string_view name, std::string_view id)
{
	constexpr std::size_t hash_digits = 16; // instance_name's 64 bits
	return name.size() == id.size() + 1 + hash_digits && name.starts_with(id) && name[id.size()] == '-' &&
	       name.substr(id.size() + 1).find_first_not_of("0123456789abcdef") == std::string_view::npos;
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
	auto it = input.sandbox.find(key);
	if (it == input.sandbox.end())
		throw InputError("the container's process is in no cgroup of the " + what + " hierarchy");
	if (it->second == "/")
		throw InputError("the container's process is in the root cgroup of the " + what +
				 " hierarchy: refusing to split it");
	return it->second;
}

cgroup_v1::Hierarchy v1_hierarchy(const LayoutInput &input, const std::string &controller,
				  const std::string &mount)
{
	cgroup_v1::Hierarchy hierarchy;
	hierarchy.mount = mount;
	hierarchy.controllers = {controller};
	hierarchy.proc_key = controller;
	hierarchy.sandbox = sandbox_of(input, controller, controller);
	if (input.overhead_parent == OverheadParent::root) {
		hierarchy.overhead = join_path(input.overhead_root, input.instance);
		hierarchy.shared = shared_dirs(input.overhead_root);
		hierarchy.cpuset_source = input.overhead_root;
	} else {
		hierarchy.overhead =
			join_path(parent_path(hierarchy.sandbox), "vmm-overhead-" + input.instance);
		hierarchy.cpuset_source = hierarchy.sandbox;
	}
	return hierarchy;
}

cgroup_v1::Layout v1_layout(const LayoutInput &input)
{
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
	cgroup_v2::Layout layout;
	layout.mount = input.mounts.unified;
	layout.sandbox = sandbox_of(input, "", "cgroup2");
	return layout;
}

} // namespace vmmcg
