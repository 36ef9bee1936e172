// The interface of a cgroup backend: one per cgroup version (cgroup_v1.cpp for v1 and hybrid hosts,
// cgroup_v2.cpp for v2), each over its own typed layout (layout.h), as runc's fs/ and fs2/ managers are.
// The hook driver makes the backend once from the container's layout and never asks which version it is.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "config.h"
#include "discovery.h"
#include "layout.h"
#include "procfs.h"

namespace vmmcg {

// What one placement pass did.
struct Moves {
	bool vmm_gone = false;
	std::size_t moved = 0;   // threads written to a cgroup in this pass
	bool retry = false;      // a move the kernel refused for now (v2 EINVAL): a full pass is needed again
	std::vector<pid_t> gone; // listed threads that exited before they could be placed

	static Moves vmm_exited()
	{
		Moves moves;
		moves.vmm_gone = true;
		return moves;
	}
};

class Backend
{
public:
	virtual ~Backend() = default;

	// createRuntime: creates every cgroup of the layout that does not exist, parents first, applies the
	// overhead limits and prepares S. On failure removes what it created and throws. Returns the number
	// of cgroups it created.
	virtual std::size_t provision(const CpuLimits &limits) = 0;
	// Undoes provision() after it returned, when the record cannot be written. Never throws.
	virtual void rollback() noexcept = 0;

	// One placement pass: checks the VMM is in this container's cgroups (HostError if not), then moves
	// each of the listed threads that is not where it belongs, vCPUs (ThreadInfo::vcpu) to the side under
	// the container's limits, every other thread to the overhead side. Threads that exit meanwhile are
	// skipped.
	virtual Moves place(const ProcFs &proc, const ProcessRef &vmm,
			    const std::vector<ThreadInfo> &threads) = 0;
	// Once the vCPU threads are placed: lifts what would still hold the overhead to the container's CPU
	// limit.
	virtual void relax() = 0;

	// poststop: moves what remains to the parent, removes every cgroup this project created, deepest
	// first, and restores S. Keeps going after a failure; returns the number of failures.
	virtual std::size_t teardown() = 0;
};

// The backend of a layout, which it keeps a reference to and updates (v2: what was changed on S), so the
// record written afterwards holds it. nullptr when there is nothing to do (sandbox-only).
std::unique_ptr<Backend> make_backend(CgroupLayout &layout);

} // namespace vmmcg
