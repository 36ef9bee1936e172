// Moving the VMM's threads to where the layout says, and the bounded loop that waits for them to exist.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cgroupfs.h"
#include "config.h"
#include "discovery.h"
#include "host.h"
#include "layout.h"

namespace vmmcg {

// What one placement pass saw and did.
struct PassResult {
	bool vmm_gone = false;
	std::vector<pid_t> tids;  // every thread seen, sorted
	std::vector<pid_t> vcpus; // the vCPU threads among them, sorted
	std::size_t moved = 0;    // threads written to a cgroup in this pass
	bool retry = false; // a move the kernel refused for now (v2 EINVAL): a full pass is needed again
	std::uint64_t youngest = 0; // the latest start time among the threads (clock ticks since boot)
};

class Placer
{
public:
	// Opens every target's mount. Throws if one cannot be opened.
	Placer(const Layout &layout, const ProcFs &proc, const std::vector<std::string> &vcpu_patterns);

	// One pass over the VMM's threads. The first pass on v1 moves the whole process to the overhead
	// cgroups (cgroup.procs: atomic for the thread group); every pass then moves each thread that is not
	// where it belongs (v1 "tasks", v2 "cgroup.threads"). A thread is only moved from this container's
	// own cgroups; the VMM itself must be in one of them, or this throws. Threads that exit meanwhile are
	// skipped. With vcpu_tids (from QMP), exactly those threads are vCPUs; without, thread names decide.
	PassResult place(const ProcessRef &vmm,
			 const std::optional<std::vector<pid_t>> &vcpu_tids = std::nullopt);

	// True if the VMM's threads are exactly `tids` (sorted): one readdir, no per-thread read. After a
	// pass whose moves all succeeded, that proves the placement without reading every thread's cgroup
	// again.
	bool same_threads(const ProcessRef &vmm, const std::vector<pid_t> &tids) const;

private:
	struct Opened {
		const Target *target;
		CgroupMount mount;
		std::string key; // the /proc/<pid>/cgroup key of this hierarchy
	};
	// Thread id -> which of the target's cgroups (sandbox, vcpu, overhead) holds it.
	using Members = std::unordered_map<pid_t, const std::string *>;
	Members membership(const Opened &opened) const;
	std::error_code move_thread(Opened &opened, const std::string &cgroup, pid_t tid);
	// Where the VMM's main thread is, per /proc/<pid>/cgroup; throws if it is outside this container's
	// cgroups. Empty when the VMM is gone.
	ProcCgroups check_vmm(const ProcessRef &vmm) const;

	const Layout &layout_;
	const ProcFs &proc_;
	const std::vector<std::string> &patterns_;
	std::vector<Opened> opened_;
	std::map<std::string, UniqueFd> thread_files_; // "<mount><cgroup>" -> open tasks/cgroup.threads
	bool process_moved_ = false;
};

struct SettleResult {
	bool complete = false;       // VMM found, vCPUs placed and verified, no thread created for quiet_ms
	bool container_gone = false; // the container's process exited before a VMM showed up
	std::optional<ProcessRef> vmm;
	std::vector<pid_t> vcpus;
	std::string vcpu_source; // "qmp" or "thread-names"
};

// Finds the VMM from the container's process and places it until the placement is complete or the
// deadline passes. Complete means: a pass found vCPU threads and every move succeeded; a readdir right
// after it found the same threads; and either QMP listed exactly those vCPUs (QEMU answers QMP only after
// it has created them all) or the youngest thread is at least settle_quiet_ms old, so the VMM is not in
// the middle of creating its threads. The quiet time is read from the threads' start times, not waited
// for by polling: a VMM that is already quiet costs one pass and one readdir, and a young one a single
// sleep until it would be quiet.
SettleResult settle(const Layout &layout, const ProcFs &proc, const Config &config,
		    const ProcessRef &container, std::chrono::steady_clock::time_point deadline);

} // namespace vmmcg
