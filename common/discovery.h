// Finding the VMM and its vCPU threads in /proc. The /proc root is a parameter, so the logic runs on temp
// trees in tests; the real kernel proves the feature in the integration tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vmmcg {

// A process as of a moment: the pid with the start time (clock ticks since boot, /proc/<pid>/stat field 22),
// so that a reused pid is never taken for the process seen before.
struct ProcessRef {
	pid_t pid = 0;
	std::uint64_t start_time = 0;
	bool operator==(const ProcessRef &) const = default;
};

struct ThreadInfo {
	pid_t tid = 0;
	std::string name;             // the comm, from /proc/<pid>/task/<tid>/stat
	std::uint64_t start_time = 0; // clock ticks since boot, field 22 of the same line
	std::optional<int> vcpu;      // the vCPU index, if the name matched a vCPU pattern
};

class ProcFs
{
public:
	explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}
	const std::string &root() const { return root_; }

	// nullopt when the process is gone.
	std::optional<std::uint64_t> start_time(pid_t pid) const;
	std::optional<ProcessRef> process(pid_t pid) const;
	// True while the pid still names the same process (same start time) and it is not a zombie.
	bool alive(const ProcessRef &ref) const;

	std::string comm(pid_t pid) const;     // "" when gone
	std::string exe_name(pid_t pid) const; // base name of /proc/<pid>/exe, "" when unreadable
	std::vector<pid_t> children(pid_t pid) const;
	std::vector<pid_t> thread_ids(pid_t pid, std::error_code &ec) const;
	std::string thread_name(pid_t pid, pid_t tid) const;
	// /proc/<pid>/task/<tid>/stat; ec is ESRCH/ENOENT when the thread is gone.
	std::string thread_stat(pid_t pid, pid_t tid, std::error_code &ec) const;
	// /proc/<pid>/task/<tid>/cgroup; ec is ESRCH/ENOENT when the thread is gone.
	std::string thread_cgroup(pid_t pid, pid_t tid, std::error_code &ec) const;
	std::string process_cgroup(pid_t pid, std::error_code &ec) const;

private:
	std::string root_;
};

// Field 22 of a /proc/<pid>/stat line, parsed after the last ')' (comm may hold spaces and parens).
std::optional<std::uint64_t> parse_stat_start_time(std::string_view stat);
// Field 2, the comm: between the first '(' and the last ')'.
std::optional<std::string_view> parse_stat_comm(std::string_view stat);
// Field 3 (state letter) of the same line.
std::optional<char> parse_stat_state(std::string_view stat);

// fnmatch-style globs against the executable's base name, then the 15-character comm.
bool matches_vmm_name(const std::vector<std::string> &globs, std::string_view exe_name,
		      std::string_view comm);

// "CPU {n}/KVM" matches "CPU 12/KVM" -> 12. nullopt when no pattern matches.
std::optional<int> match_vcpu_name(const std::vector<std::string> &patterns, std::string_view name);

// The VMM: pid itself if its name matches, else the first matching descendant, breadth first, at most
// max_depth generations down. nullopt if none (yet).
std::optional<ProcessRef> find_vmm(const ProcFs &proc, pid_t pid, const std::vector<std::string> &globs,
				   unsigned max_depth);

// The time since boot (CLOCK_BOOTTIME, the clock of the start times in /proc/<pid>/stat), and the length of
// one of their clock ticks.
std::chrono::nanoseconds boot_time();
std::chrono::nanoseconds clock_tick();

// The VMM's threads with their names, start times and vCPU indexes: one read of .../stat per thread.
// Threads that exit while they are listed are left out.
std::vector<ThreadInfo> list_threads(const ProcFs &proc, pid_t pid, const std::vector<std::string> &patterns,
				     std::error_code &ec);

} // namespace vmmcg
