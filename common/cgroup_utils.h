// What both backends do to cgroups beyond one file access (cgroupfs.h): checked writes, removal that drains
// a cgroup first, and the thread mover of a placement pass.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <unordered_map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "backend.h"
#include "cgroupfs.h"
#include "discovery.h"
#include "procfs.h"

namespace vmmcg {

// Writes value to a cgroup file; throws std::system_error naming the value and the file.
void write_value(const CgroupMount &mount, std::string_view cgroup, std::string_view file,
		 std::string_view value);

// The cpuset part of CPU limits (cpuset.cpus, cpuset.mems), where set: the same files on v1 and v2.
void write_cpuset(const CgroupMount &mount, std::string_view cgroup, const CpuLimits &limits);

// Moves what is left in cgroup to drain_to (its parent when empty or gone; through `thread_file`: "tasks"
// or "cgroup.threads"), then removes it, retrying EBUSY with bounded backoff. ENOENT when it was gone
// already (someone else removed it: not a failure, but nothing to report as removed).
std::error_code remove_cgroup(const CgroupMount &mount, const std::string &cgroup, const char *thread_file,
			      std::string_view drain_to = {});
// The outcome of one removal, logged as what really happened and noted in `teardown` as `name` (removed,
// removed already, or a failure).
void report_removal(const CgroupMount &mount, const std::string &cgroup, std::error_code ec,
		    const std::string &name, Teardown &teardown);

// A mount for cleanup: a failure is logged and counted, and cleanup goes on with the next one.
std::optional<CgroupMount> open_for_cleanup(const std::string &path, std::size_t &failures);

// One hierarchy as a placement pass sees it: where vCPU threads and the others belong, and which cgroups of
// this container hold the VMM's threads (their thread files say where each thread is).
struct Sorting {
	CgroupMount mount;
	std::string proc_key; // the hierarchy's key in /proc/<pid>/cgroup, for a thread found elsewhere
	std::string vcpu;     // where vCPU threads go
	std::string overhead; // where every other thread goes
	std::vector<std::string> members; // this container's cgroups in the hierarchy, without repeats
	const char *thread_file;          // "tasks" (v1) or "cgroup.threads" (v2)
	bool einval_is_transient;         // v2: a thread still being created cannot migrate yet
	// v1: a tid written to `tasks` moves that task wherever it is on the host. A listed thread may exit
	// and its tid be reused by a task of another process before the write; each move is checked and such
	// a move undone. v2 needs no check: cgroup.threads takes only threads already in S's threaded
	// subtree.
	bool check_owner;
};

// Sorts threads between the two sides of each hierarchy. Keeps the thread files it opened for the next pass.
class ThreadMover
{
public:
	explicit ThreadMover(std::vector<Sorting> sortings) : sortings_(std::move(sortings)) {}
	const std::vector<Sorting> &sortings() const { return sortings_; }

	// Reads membership from the thread files (a few reads a pass, where reading every thread's
	// /proc/.../cgroup was one per thread), then moves each listed thread that is on the wrong side.
	Moves move(const ProcFs &proc, const TaskDir &tasks, const std::vector<ThreadInfo> &threads,
		   std::chrono::steady_clock::time_point deadline);

private:
	using Members = std::unordered_map<pid_t, const std::string *>; // tid -> the cgroup that holds it
	Members membership(const Sorting &sorting) const;
	// One thread in every hierarchy; false when it is gone (or its tid was another task's: moved back).
	bool place_everywhere(const std::vector<Members> &members, const ProcFs &proc,
			      const ThreadInfo &thread, Moves &moves);
	// The result of one thread's move in one hierarchy; false when the thread is gone.
	bool place_thread(Sorting &sorting, const Members &members, const ThreadInfo &thread, Moves &moves);
	std::error_code write_thread(Sorting &sorting, const std::string &cgroup, pid_t tid);
	// After a thread's last v1 write: the tid is still a thread of the VMM, or the task it now names goes
	// back to where it was born (its thread group's or its parent's cgroup) in every hierarchy written.
	// True when the moves were the VMM's.
	bool check_owner(const ProcFs &proc, pid_t tid);
	// The tid names a thread of the VMM (in its task directory, tasks_).
	bool is_vmm_thread(pid_t tid) const;

	std::vector<Sorting> sortings_;
	std::map<std::string, UniqueFd> thread_files_; // "<mount><cgroup>" -> open thread file
	const TaskDir *tasks_ = nullptr;               // the VMM's, during move()
	bool checked_before_ = false;    // the thread under way was found the VMM's before its first write
	std::vector<Sorting *> written_; // the hierarchies where it was written (and checked after)
};

// ENOENT or ESRCH: the thread, process or cgroup exited or was removed meanwhile.
bool is_gone(const std::error_code &ec);

} // namespace vmmcg
