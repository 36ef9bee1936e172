// Creating the cgroups of a layout and removing them again.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config.h"
#include "layout.h"

namespace vmmcg {

struct Provisioned {
	struct Made {
		std::string mount;
		std::string path;
		bool v2;
	};
	// Each cgroup this run made, in order (shared ones included): what a rollback removes.
	std::vector<Made> made;
	// "<mount><path>" of each cgroup this run made, or found already there (adopted), for the log.
	std::vector<std::string> created;
	std::vector<std::string> adopted;
	// v2: controllers this run enabled in S's cgroup.subtree_control, and S's own values before the
	// split (file -> value), to be restored by poststop.
	std::vector<std::string> enabled;
	std::map<std::string, std::string> saved;
};

// Creates every non-existing cgroup of the layout, parents first: seeds cpuset.cpus/mems of new v1 cpuset
// cgroups from their parent (an empty cpuset refuses tasks), applies the overhead limits, makes v2 children
// threaded and enables +cpu +cpuset in S. On failure removes what it created and throws.
Provisioned provision(const Layout &layout, const OverheadLimits &limits);

// Undoes exactly what provision() did: removes the cgroups it made, deepest first (shared ones too: this
// run made them), and restores S. For a failure after provision() returned (the record write).
void rollback(const Layout &layout, const Provisioned &provisioned);

// v2, once the vCPU threads are in S/vcpu: S's cpu.max becomes "max", so that the container's CPU limit
// (now on S/vcpu) binds the vCPUs only and the overhead in S/overhead runs outside it. Done at placement,
// not at createRuntime: a container whose VMM never shows up keeps its limit.
void relax_sandbox(const Layout &layout);

// v2: writes S's saved values back and disables the controllers this project enabled in S.
// Returns the number of writes that failed (ENOENT, S already gone, counts as done).
std::size_t restore_sandbox(const Layout &layout, const std::vector<std::string> &enabled,
			    const std::map<std::string, std::string> &saved);

// For each target, deepest first, every cgroup that is not shared: moves the threads still in it to its
// parent, then rmdir, retrying EBUSY with bounded backoff; ENOENT is done. Keeps going after a failure.
// Returns the number of cgroups that could not be removed.
std::size_t teardown(const Layout &layout);

} // namespace vmmcg
