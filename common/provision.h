// Creating the cgroups of a layout and removing them again.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "layout.h"

namespace vmmcg {

struct Provisioned {
	// "<mount><path>" of each cgroup this run made (rolled back on failure) or found (adopted).
	std::vector<std::string> created;
	std::vector<std::string> adopted;
};

// Creates every non-existing cgroup of the layout, parents first: seeds cpuset.cpus/mems of new v1 cpuset
// cgroups from their parent (an empty cpuset refuses tasks), applies the overhead limits, makes v2 children
// threaded and enables +cpu +cpuset in S. On failure removes what it created and throws.
Provisioned provision(const Layout &layout, const OverheadLimits &limits);

// For each target, deepest first, every cgroup that is not shared: moves the threads still in it to its
// parent, then rmdir, retrying EBUSY with bounded backoff; ENOENT is done. Keeps going after a failure.
// Returns the number of cgroups that could not be removed.
std::size_t teardown(const Layout &layout);

} // namespace vmmcg
