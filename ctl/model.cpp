#include "model.h"

#include <algorithm>

namespace vmmcg::ctl {

namespace {

const std::string *path_in(const ThreadStatus &thread, const HierarchyStatus &hierarchy)
{
	auto it = thread.cgroups.find(hierarchy.key);
	return it == thread.cgroups.end() ? nullptr : &it->second;
}

} // namespace

Location locate(const HierarchyStatus &hierarchy, const std::string &path)
{
	// Sandbox-only: both sides are S, and S is where every thread belongs.
	if (hierarchy.vcpu.path == hierarchy.overhead.path && path == hierarchy.vcpu.path)
		return Location::sandbox;
	if (path == hierarchy.vcpu.path)
		return Location::vcpu;
	if (path == hierarchy.overhead.path)
		return Location::overhead;
	if (path == hierarchy.sandbox.path)
		return Location::sandbox;
	return Location::elsewhere;
}

Location locate(const ContainerStatus &status, const ThreadStatus &thread)
{
	std::optional<Location> found;
	for (const auto &hierarchy : status.hierarchies) {
		const std::string *path = path_in(thread, hierarchy);
		Location here = path ? locate(hierarchy, *path) : Location::elsewhere;
		if (found && *found != here)
			return Location::mixed;
		found = here;
	}
	return found.value_or(Location::elsewhere);
}

bool placed(const ContainerStatus &status, const ThreadStatus &thread)
{
	return !status.hierarchies.empty() &&
	       std::all_of(status.hierarchies.begin(), status.hierarchies.end(), [&](const auto &hierarchy) {
		       const std::string *path = path_in(thread, hierarchy);
		       const CgroupRef &want =
			       thread.side == Side::vcpu ? hierarchy.vcpu : hierarchy.overhead;
		       return path && *path == want.path;
	       });
}

bool placement_ok(const ContainerStatus &status)
{
	if (status.phase != "created" || !status.vmm || !status.vmm->process.alive || status.threads.empty())
		return false;
	if (!status.problems.empty())
		return false;
	return std::all_of(status.threads.begin(), status.threads.end(),
			   [&](const ThreadStatus &thread) { return placed(status, thread); });
}

const char *to_string(Side side)
{
	return side == Side::vcpu ? "vcpu" : "overhead";
}

const char *to_string(Location location)
{
	switch (location) {
	case Location::vcpu:
		return "vcpu";
	case Location::overhead:
		return "overhead";
	case Location::sandbox:
		return "sandbox";
	case Location::elsewhere:
		return "elsewhere";
	case Location::mixed:
		return "mixed";
	}
	return "?";
}

} // namespace vmmcg::ctl
