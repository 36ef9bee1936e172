// The interface of a cgroup backend: one per cgroup version (cgroup_v1.cpp for v1 and hybrid hosts,
// cgroup_v2.cpp for v2), each over its own typed layout (layout.h), as runc's fs/ and fs2/ managers are.
// The hook driver makes the backend once from the container's layout and never asks which version it is.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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

// The overhead's CPU limits: the configured ones and, where they set no quota, a cap derived from the
// container's own CPU limit (cap_percent of it, at least cap_min_millicpus; none when the container has no
// limit or cap_percent is 0).
struct OverheadPolicy {
	CpuLimits limits;
	unsigned cap_percent = 25;
	unsigned cap_min_millicpus = 250;

	static OverheadPolicy from(const Config &config);
	// No quota for the overhead side, whatever the container's limit: overhead_limits sets it unlimited
	// (-1), or sets none and the derived cap is off (cap_percent 0).
	bool uncapped() const { return limits.quota_us ? *limits.quota_us < 0 : cap_percent == 0; }
	// The quota of the overhead per `period` us, given the container's quota and period (v1 cfs_quota_us
	// and cfs_period_us, v2 cpu.max). nullopt: leave it unlimited.
	std::optional<std::int64_t> quota(std::optional<std::int64_t> container_quota,
					  std::uint64_t container_period, std::uint64_t period) const;
};

// What a teardown did, for poststop's one line: the cgroups it removed and those someone else (the
// runtime, which removes S with what is below it) had removed before it, each named as the backend
// calls it ("S/vcpu", "O in cpu,cpuacct").
struct Teardown {
	std::vector<std::string> removed;
	std::vector<std::string> gone; // removed already
	std::size_t failures = 0;

	// "removed S/vcpu and S/overhead", "S/vcpu and S/overhead were removed already", both joined by "; ",
	// or "nothing to remove".
	std::string summary() const;
};

class Backend
{
public:
	virtual ~Backend() = default;

	// createRuntime: creates the cgroups of the layout, parents first, applies the overhead limits and
	// prepares S. A cgroup of this container that exists already is refused (HostError: never adopted); a
	// shared one (the overhead root) is made when missing and never changed when it exists. On failure
	// removes what it created and throws. Returns the number of cgroups it created.
	virtual std::size_t provision(const OverheadPolicy &policy) = 0;
	// Undoes provision() after it returned, when the record cannot be written. Never throws.
	virtual void rollback() noexcept = 0;

	// One placement pass: checks the VMM is in this container's cgroups (HostError if not), then moves
	// each of the listed threads that is not where it belongs, vCPUs (ThreadInfo::vcpu) to the side under
	// the container's limits, every other thread to the overhead side. Threads that exit meanwhile are
	// skipped. A pass stops at the deadline (Moves::retry), so a stage keeps its bound whatever the VMM's
	// size.
	// `tasks` is the VMM's task directory the threads were listed from.
	virtual Moves place(const ProcFs &proc, const ProcessRef &vmm, const TaskDir &tasks,
			    const std::vector<ThreadInfo> &threads,
			    std::chrono::steady_clock::time_point deadline) = 0;
	// Once the vCPU threads are placed: lifts what would still hold the overhead to the container's CPU
	// limit.
	virtual void relax() = 0;
	// The container's CPU limit changed on S since (an in-place resize by the runtime, or systemd writing
	// a unit's CPUQuota= back on daemon-reload): the vCPUs take the new limit, the overhead's derived cap
	// follows it, and S is relaxed again. True when something was changed.
	virtual bool follow_limits(const OverheadPolicy &policy) = 0;

	// poststop: moves what remains to the parent, removes every cgroup this project created, deepest
	// first, and restores S. Keeps going after a failure; says what it removed and what was gone already,
	// and counts the failures.
	virtual Teardown teardown() = 0;
};

// The backend of a layout, which it keeps a reference to and updates (v2: what was changed on S), so the
// record written afterwards holds it. nullptr when there is nothing to do (sandbox-only).
std::unique_ptr<Backend> make_backend(CgroupLayout &layout);

} // namespace vmmcg
