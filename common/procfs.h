// The one place that reads /proc: every /proc path is built here. The root is a parameter, so discovery
// runs on temp trees in unit tests; the real kernel proves the features in the integration tests.
// The /proc counterpart of cgroupfs.h.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "unique_fd.h"

namespace vmmcg {

// A process as of a moment: the pid with the start time (clock ticks since boot, /proc/<pid>/stat field 22),
// so that a reused pid is never taken for the process seen before.
struct ProcessRef {
	pid_t pid = 0;
	std::uint64_t start_time = 0;
	bool operator==(const ProcessRef &) const = default;
};

// The fields of a /proc/<pid>[/task/<tid>]/stat line the hooks use. comm may hold spaces and parentheses:
// it is what lies between the first '(' and the last ')'.
struct Stat {
	std::string_view comm;
	char state = '?';
	std::uint64_t start_time = 0; // field 22
};
std::optional<Stat> parse_stat(std::string_view line);

// A pid-valued line of /proc/<pid>/status ("Tgid:\t42", "PPid:\t1"): the first number after the key.
std::optional<pid_t> parse_status_pid(std::string_view status, std::string_view key);

class ProcFs
{
public:
	explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}
	const std::string &root() const { return root_; }

	// "<root>/<pid>/<file>" and "<root>/<pid>/task/<tid>/<file>" (file may be empty).
	std::string path(pid_t pid, std::string_view file = {}) const;
	std::string task_path(pid_t pid, pid_t tid, std::string_view file = {}) const;

	// nullopt when the process is gone.
	std::optional<ProcessRef> process(pid_t pid) const;
	// True while the pid still names the same process (same start time) and it is not a zombie.
	bool alive(const ProcessRef &ref) const;

	std::string comm(pid_t pid) const;     // "" when gone
	std::string exe_name(pid_t pid) const; // base name of /proc/<pid>/exe, "" when unreadable
	std::vector<pid_t> children(pid_t pid) const;
	std::vector<pid_t> thread_ids(pid_t pid, std::error_code &ec) const; // sorted

	// Whole files, bounded; ec is ESRCH or ENOENT when the process or thread is gone.
	std::string read(pid_t pid, std::string_view file, std::error_code &ec) const;
	std::string read_task(pid_t pid, pid_t tid, std::string_view file, std::error_code &ec) const;
	// /proc/self/<file>
	std::string read_self(std::string_view file, std::error_code &ec) const;

private:
	std::string root_;
};

// /proc/<pid>/task, opened once for a pass over a process's threads: the listing, each thread's files, the
// check that a moved tid is still the process's thread, and the listing again at the end of the pass. A
// thread's file is a lookup of two names where a path is a walk from /proc (a fifth of a stat read's
// cost), and the fd stays the directory of the process it was opened for should the pid be reused
// meanwhile.
class TaskDir
{
public:
	TaskDir(const ProcFs &proc, pid_t pid);
	// ENOENT or ESRCH when the process was gone (then nothing else is read).
	const std::error_code &error() const { return error_; }

	std::vector<pid_t> ids(std::error_code &ec) const; // sorted; one listing at a time
	std::string read(pid_t tid, std::string_view file, std::error_code &ec) const;
	// The tid is a thread of this process (one name looked up in the directory).
	bool has(pid_t tid) const;

private:
	UniqueFd fd_;
	std::error_code error_;
};

// The time since boot (CLOCK_BOOTTIME, the clock of the start times in /proc/<pid>/stat), and the length of
// one of their clock ticks.
std::chrono::nanoseconds boot_time();
std::chrono::nanoseconds clock_tick();

} // namespace vmmcg
