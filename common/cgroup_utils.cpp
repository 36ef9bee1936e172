#include "cgroup_utils.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "errors.h"
#include "host.h"
#include "paths.h"
#include "scope_exit.h"
#include "text.h"

namespace vmmcg {

bool is_gone(const std::error_code &ec)
{
	return ec == std::errc::no_such_process || ec == std::errc::no_such_file_or_directory;
}

void write_value(const CgroupMount &mount, std::string_view cgroup, std::string_view file,
		 std::string_view value)
{
	if (std::error_code ec = mount.write_file(cgroup, file, value))
		throw std::system_error(ec, "writing '" + std::string(value) + "' to " +
						    mount.describe(cgroup, file));
}

void write_cpuset(const CgroupMount &mount, std::string_view cgroup, const CpuLimits &limits)
{
	if (limits.cpus)
		write_value(mount, cgroup, "cpuset.cpus", *limits.cpus);
	if (limits.mems)
		write_value(mount, cgroup, "cpuset.mems", *limits.mems);
}

namespace {

// Moves each id to the thread file of `to` (the parent when it is gone). ESRCH: the thread exited
// meanwhile, nothing to move.
void drain(const CgroupMount &mount, const std::string &cgroup, const char *thread_file,
	   std::string_view target, const std::vector<pid_t> &ids)
{
	std::error_code ec;
	UniqueFd to =
		mount.open_file(target.empty() ? parent_path(cgroup) : target, thread_file, O_WRONLY, ec);
	if (!to.valid() && !target.empty())
		to = mount.open_file(parent_path(cgroup), thread_file, O_WRONLY, ec);
	if (!to.valid())
		return;
	for (pid_t id : ids)
		if (std::error_code move_ec = write_id(to.get(), id);
		    move_ec && move_ec != std::errc::no_such_process)
			spdlog::warn("moving thread {} out of {}: {}", id, mount.describe(cgroup),
				     move_ec.message());
}

} // namespace

std::error_code remove_cgroup(const CgroupMount &mount, const std::string &cgroup, const char *thread_file,
			      std::string_view drain_to)
{
	using namespace std::chrono_literals;
	auto delay = 5ms;
	std::error_code ec;
	// rmdir first: at poststop the container has exited and the cgroup is empty, so the thread file need
	// not be read. Busy: move what is left to the parent, or give exiting tasks a moment.
	for (int attempt = 0; attempt < 10; ++attempt) {
		ec = mount.remove_dir(cgroup);
		if (!ec)
			return {};
		if (ec == std::errc::no_such_file_or_directory)
			return attempt == 0
				       ? ec
				       : std::error_code(); // gone before: nothing of it was removed here
		if (ec != std::errc::device_or_resource_busy)
			return ec;
		std::error_code read_ec;
		std::vector<pid_t> ids = mount.read_ids(cgroup, thread_file, read_ec);
		if (read_ec == std::errc::no_such_file_or_directory)
			return {};
		if (!ids.empty()) {
			drain(mount, cgroup, thread_file, drain_to, ids);
			continue;
		}
		std::this_thread::sleep_for(delay); // exiting tasks keep a cgroup busy for a moment
		delay = std::min(delay * 2, std::chrono::milliseconds(200));
	}
	return ec;
}

void report_removal(const CgroupMount &mount, const std::string &cgroup, std::error_code ec,
		    const std::string &name, Teardown &teardown)
{
	if (!ec) {
		spdlog::debug("removed {}", mount.describe(cgroup));
		teardown.removed.push_back(name);
	} else if (ec == std::errc::no_such_file_or_directory) {
		spdlog::debug("{} was removed already", mount.describe(cgroup));
		teardown.gone.push_back(name);
	} else {
		spdlog::error("removing {}: {}", mount.describe(cgroup), ec.message());
		++teardown.failures;
	}
}

std::optional<CgroupMount> open_for_cleanup(const std::string &path, std::size_t &failures)
{
	try {
		return CgroupMount::open(path);
	} catch (const std::exception &e) {
		spdlog::error("{}", e.what());
		++failures;
		return std::nullopt;
	}
}

ThreadMover::Members ThreadMover::membership(const Sorting &sorting) const
{
	Members members;
	for (const std::string &cgroup : sorting.members) {
		std::error_code ec;
		for (pid_t tid : sorting.mount.read_ids(cgroup, sorting.thread_file, ec))
			members.emplace(tid, &cgroup);
		if (ec && ec != std::errc::no_such_file_or_directory) // ENOENT: removed by someone else
			throw std::system_error(
				ec, "reading " + sorting.mount.describe(cgroup, sorting.thread_file));
	}
	return members;
}

std::error_code ThreadMover::write_thread(Sorting &sorting, const std::string &cgroup, pid_t tid)
{
	std::string key = sorting.mount.path() + cgroup;
	auto it = thread_files_.find(key);
	if (it == thread_files_.end()) {
		std::error_code ec;
		UniqueFd fd = sorting.mount.open_file(cgroup, sorting.thread_file, O_WRONLY, ec);
		if (!fd.valid())
			throw std::system_error(
				ec, "opening " + sorting.mount.describe(cgroup, sorting.thread_file));
		it = thread_files_.emplace(key, std::move(fd)).first;
	}
	return write_id(it->second.get(), tid);
}

// A thread in none of this container's cgroups: exited since it was listed, or somewhere else, left alone.
bool ThreadMover::place_thread(Sorting &sorting, const Members &members, const ThreadInfo &thread,
			       Moves &moves)
{
	const std::string &want = thread.vcpu ? sorting.vcpu : sorting.overhead;
	auto it = members.find(thread.tid);
	if (it == members.end()) {
		std::error_code ec;
		ProcCgroups actual = parse_proc_cgroup(tasks_->read(thread.tid, "cgroup", ec));
		if (ec)
			return false;
		if (auto at = actual.find(sorting.proc_key); at != actual.end())
			spdlog::warn("thread {} ({}) is in {}, not in this container's cgroups: left alone",
				     thread.tid, printable(thread.name), sorting.mount.describe(at->second));
		return true;
	}
	if (*it->second == want)
		return true;
	// v1: membership was read before the first write of the pass, which may be thousands of writes
	// ago; the tid is checked again right before the thread's first write, so that only a task born
	// between these two system calls can take it. The undo after its last write (back to where the task
	// was born) is right for such a newborn, not for an older task that was moved since (an exec'd
	// process of the container is born outside and moved in by the runtime).
	if (sorting.check_owner && !checked_before_ && !is_vmm_thread(thread.tid))
		return false;
	checked_before_ = true;
	std::error_code ec = write_thread(sorting, want, thread.tid);
	if (is_gone(ec))
		return false;
	if (!ec && sorting.check_owner)
		written_.push_back(&sorting);
	if (ec == std::errc::invalid_argument && sorting.einval_is_transient) {
		++moves.moved;
		moves.retry = true;
		return true;
	}
	if (ec)
		throw std::system_error(ec, "moving thread " + std::to_string(thread.tid) + " (" +
						    printable(thread.name) + ") to " +
						    sorting.mount.describe(want, sorting.thread_file));
	++moves.moved;
	return true;
}

// One name looked up in the VMM's task directory, opened once a pass: a path from /proc per check cost
// poststart some 15 µs a thread (four checks, four path walks). The fd also stays the VMM's own directory
// should its pid be reused, where a path would name the new process.
bool ThreadMover::is_vmm_thread(pid_t tid) const
{
	return tasks_->has(tid);
}

bool ThreadMover::check_owner(const ProcFs &proc, pid_t tid)
{
	if (written_.empty() || is_vmm_thread(tid))
		return true;
	// Not the VMM's thread any more: gone, or its tid reused on the host. Where was the new task born?
	std::error_code ec;
	std::string status = proc.read(tid, "status", ec);
	if (ec)
		return false; // exited too: nothing was moved that lives
	pid_t tgid = parse_status_pid(status, "Tgid").value_or(0);
	pid_t origin = tgid != tid ? tgid : parse_status_pid(status, "PPid").value_or(0);
	ProcCgroups where = parse_proc_cgroup(proc.read(origin, "cgroup", ec));
	for (Sorting *sorting : written_) {
		auto it = where.find(sorting->proc_key);
		bool known = !ec && it != where.end();
		std::error_code undo = known ? write_thread(*sorting, it->second, tid) : errno_code(ENOENT);
		spdlog::warn("thread id {} was reused by pid {} before the move: {}", tid, tgid,
			     undo ? "could not move it back: " + undo.message()
				  : "moved back to " + sorting->mount.describe(it->second));
	}
	return false;
}

// The thread in every hierarchy, then one check that each write moved the VMM's thread: no other task can
// have been moved between the check before the first write and the check after the last one unless its tid
// was reused, and then every write is undone.
bool ThreadMover::place_everywhere(const std::vector<Members> &members, const ProcFs &proc,
				   const ThreadInfo &thread, Moves &moves)
{
	checked_before_ = false;
	written_.clear();
	bool placed = true;
	try {
		for (std::size_t i = 0; i < sortings_.size() && placed; ++i)
			placed = place_thread(sortings_[i], members[i], thread, moves);
	} catch (...) {
		check_owner(proc, thread.tid);
		throw;
	}
	return check_owner(proc, thread.tid) && placed;
}

Moves ThreadMover::move(const ProcFs &proc, const TaskDir &tasks, const std::vector<ThreadInfo> &threads,
			std::chrono::steady_clock::time_point deadline)
{
	Moves moves;
	tasks_ = &tasks;
	ScopeExit forget([this] { tasks_ = nullptr; });
	// Read after the threads were listed, so that a listed thread is in one of them, or elsewhere.
	std::vector<Members> members;
	for (const auto &sorting : sortings_)
		members.push_back(membership(sorting));
	std::size_t done = 0;
	for (const auto &thread : threads) {
		if (++done % 64 == 0 && std::chrono::steady_clock::now() >= deadline) {
			moves.retry = true; // the rest in a later pass, or by the settler
			break;
		}
		if (!place_everywhere(members, proc, thread, moves))
			moves.gone.push_back(thread.tid);
	}
	return moves;
}

} // namespace vmmcg
