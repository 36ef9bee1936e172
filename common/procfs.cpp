#include "procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "errors.h"
#include "io.h"
#include "text.h"

namespace vmmcg {

namespace {

// The largest /proc file the hooks read (a children list of a big process, a status).
constexpr std::size_t max_proc_file_size = 1 << 20;

// Fields 3 (state) and 22 (start time), in one walk over the words after "pid (comm) ", without allocating:
// this runs for every thread of every pass.
bool stat_fields(std::string_view rest, std::string_view &state, std::string_view &start)
{
	unsigned field = 3;
	while (field <= 22) {
		std::size_t begin = rest.find_first_not_of(' ');
		if (begin == std::string_view::npos)
			return false;
		rest.remove_prefix(begin);
		std::size_t end = rest.find_first_of(" \n");
		std::string_view word = rest.substr(0, end);
		if (field == 3)
			state = word;
		else if (field == 22)
			start = word;
		rest.remove_prefix(word.size());
		++field;
	}
	return true;
}

} // namespace

std::optional<Stat> parse_stat(std::string_view line)
{
	std::size_t open = line.find('(');
	std::size_t close = line.rfind(')');
	if (open == std::string_view::npos || close == std::string_view::npos || close < open)
		return std::nullopt;
	std::string_view state, start;
	if (!stat_fields(line.substr(close + 1), state, start))
		return std::nullopt;
	auto start_time = to_number<std::uint64_t>(start);
	if (state.size() != 1 || !start_time)
		return std::nullopt;
	return Stat{line.substr(open + 1, close - open - 1), state.front(), *start_time};
}

std::optional<pid_t> parse_status_pid(std::string_view status, std::string_view key)
{
	for (std::string_view line : lines(status)) {
		if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':')
			continue;
		std::string_view rest = line.substr(key.size() + 1);
		std::size_t begin = rest.find_first_not_of(" \t");
		if (begin == std::string_view::npos)
			return std::nullopt;
		rest.remove_prefix(begin);
		return to_number<pid_t>(rest.substr(0, rest.find_first_of(" \t")));
	}
	return std::nullopt;
}

std::string ProcFs::path(pid_t pid, std::string_view file) const
{
	std::string out = root_ + "/" + std::to_string(pid);
	if (!file.empty())
		out.append("/").append(file);
	return out;
}

std::string ProcFs::task_path(pid_t pid, pid_t tid, std::string_view file) const
{
	std::string out = path(pid, "task") + "/" + std::to_string(tid);
	if (!file.empty())
		out.append("/").append(file);
	return out;
}

std::optional<ProcessRef> ProcFs::process(pid_t pid) const
{
	std::error_code ec;
	auto stat = parse_stat(read(pid, "stat", ec));
	if (ec || !stat)
		return std::nullopt;
	return ProcessRef{pid, stat->start_time};
}

bool ProcFs::alive(const ProcessRef &ref) const
{
	std::error_code ec;
	std::string line = read(ref.pid, "stat", ec);
	auto stat = parse_stat(line);
	return !ec && stat && stat->start_time == ref.start_time && stat->state != 'Z' && stat->state != 'X';
}

std::string ProcFs::comm(pid_t pid) const
{
	std::error_code ec;
	return trimmed(read(pid, "comm", ec));
}

std::string ProcFs::exe_name(pid_t pid) const
{
	std::string link = path(pid, "exe");
	char buf[4096];
	ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
	if (n <= 0)
		return {};
	std::string_view target(buf, static_cast<std::size_t>(n));
	if (target.ends_with(" (deleted)"))
		target.remove_suffix(10);
	std::size_t slash = target.rfind('/');
	return std::string(slash == std::string_view::npos ? target : target.substr(slash + 1));
}

std::vector<pid_t> ProcFs::children(pid_t pid) const
{
	// /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN) lists the children of each thread.
	std::vector<pid_t> out;
	std::error_code ec;
	for (pid_t tid : thread_ids(pid, ec)) {
		std::string text = read_task(pid, tid, "children", ec);
		for (std::string_view word : split(trim_end(text), ' '))
			if (auto child = to_number<pid_t>(word))
				out.push_back(*child);
	}
	return out;
}

std::vector<pid_t> ProcFs::thread_ids(pid_t pid, std::error_code &ec) const
{
	return TaskDir(*this, pid).ids(ec);
}

std::string ProcFs::read(pid_t pid, std::string_view file, std::error_code &ec) const
{
	return read_file(path(pid, file), max_proc_file_size, ec);
}

std::string ProcFs::read_task(pid_t pid, pid_t tid, std::string_view file, std::error_code &ec) const
{
	return read_file(task_path(pid, tid, file), max_proc_file_size, ec);
}

std::string ProcFs::read_self(std::string_view file, std::error_code &ec) const
{
	return read_file(root_ + "/self/" + std::string(file), max_proc_file_size, ec);
}

TaskDir::TaskDir(const ProcFs &proc, pid_t pid)
	: fd_(::open(proc.path(pid, "task").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC))
{
	if (!fd_.valid())
		error_ = errno_code();
}

std::vector<pid_t> TaskDir::ids(std::error_code &ec) const
{
	ec = error_;
	if (ec)
		return {};
	// Read with getdents64 from the start, on this fd: a DIR of its own (a duplicate, fdopendir, rewound)
	// cost four system calls more per listing.
	std::vector<pid_t> out;
	if (::lseek(fd_.get(), 0, SEEK_SET) != 0) {
		ec = errno_code();
		return out;
	}
	alignas(struct dirent64) char buffer[8192];
	for (;;) {
		ssize_t got = ::getdents64(fd_.get(), buffer, sizeof buffer);
		if (got < 0) {
			ec = errno_code();
			return {};
		}
		if (got == 0)
			break;
		for (ssize_t at = 0; at < got;) {
			dirent64 entry;
			std::memcpy(&entry, buffer + at, offsetof(dirent64, d_name));
			std::string_view name(buffer + at + offsetof(dirent64, d_name));
			if (auto id = to_number<pid_t>(name); id && *id > 0)
				out.push_back(*id);
			at += entry.d_reclen;
		}
	}
	std::sort(out.begin(), out.end());
	return out;
}

bool TaskDir::has(pid_t tid) const
{
	return fd_.valid() && ::faccessat(fd_.get(), std::to_string(tid).c_str(), F_OK, 0) == 0;
}

std::string TaskDir::read(pid_t tid, std::string_view file, std::error_code &ec) const
{
	ec = error_;
	if (ec)
		return {};
	return read_file_at(fd_.get(), std::to_string(tid) + "/" + std::string(file), max_proc_file_size, ec);
}

std::chrono::nanoseconds boot_time()
{
	struct timespec now {};
	::clock_gettime(CLOCK_BOOTTIME, &now);
	return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

std::chrono::nanoseconds clock_tick()
{
	static const long per_second = ::sysconf(_SC_CLK_TCK);
	return std::chrono::nanoseconds(1'000'000'000 / (per_second > 0 ? per_second : 100));
}

} // namespace vmmcg
