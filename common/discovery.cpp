#include "discovery.h"

#include <dirent.h>
#include <fnmatch.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <deque>

#include "errors.h"
#include "io.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

constexpr std::size_t max_proc_file_size = 1 << 20;

std::string trim_newline(std::string text)
{
	while (!text.empty() && (text.back() == '\n' || text.back() == '\0'))
		text.pop_back();
	return text;
}

template <typename T>
std::optional<T> to_number(std::string_view text)
{
	T value{};
	auto [ptr, err] = std::from_chars(text.data(), text.data() + text.size(), value);
	if (err != std::errc() || ptr != text.data() + text.size() || text.empty())
		return std::nullopt;
	return value;
}

// The fields after "pid (comm) ": field 3 is index 0.
std::optional<std::string_view> stat_field(std::string_view stat, unsigned field)
{
	std::size_t paren = stat.rfind(')');
	if (paren == std::string_view::npos || field < 3)
		return std::nullopt;
	std::string_view rest = stat.substr(paren + 1);
	unsigned index = 3;
	while (true) {
		std::size_t start = rest.find_first_not_of(' ');
		if (start == std::string_view::npos)
			return std::nullopt;
		rest.remove_prefix(start);
		std::size_t end = rest.find_first_of(" \n");
		if (index == field)
			return rest.substr(0, end);
		if (end == std::string_view::npos)
			return std::nullopt;
		rest.remove_prefix(end);
		++index;
	}
}

std::vector<pid_t> numeric_entries(const std::string &dir, std::error_code &ec)
{
	std::vector<pid_t> out;
	DIR *d = ::opendir(dir.c_str());
	if (!d) {
		ec = errno_code();
		return out;
	}
	while (struct dirent *entry = ::readdir(d)) {
		if (auto id = to_number<pid_t>(entry->d_name); id && *id > 0)
			out.push_back(*id);
	}
	::closedir(d);
	std::sort(out.begin(), out.end());
	return out;
}

} // namespace

std::optional<std::uint64_t> parse_stat_start_time(std::string_view stat)
{
	auto field = stat_field(stat, 22);
	return field ? to_number<std::uint64_t>(*field) : std::nullopt;
}

std::optional<std::string_view> parse_stat_comm(std::string_view stat)
{
	std::size_t open = stat.find('(');
	std::size_t close = stat.rfind(')');
	if (open == std::string_view::npos || close == std::string_view::npos || close < open)
		return std::nullopt;
	return stat.substr(open + 1, close - open - 1);
}

std::optional<char> parse_stat_state(std::string_view stat)
{
	auto field = stat_field(stat, 3);
	if (!field || field->size() != 1)
		return std::nullopt;
	return field->front();
}

std::optional<std::uint64_t> ProcFs::start_time(pid_t pid) const
{
	std::error_code ec;
	std::string stat = read_file(root_ + "/" + std::to_string(pid) + "/stat", max_proc_file_size, ec);
	return ec ? std::nullopt : parse_stat_start_time(stat);
}

std::optional<ProcessRef> ProcFs::process(pid_t pid) const
{
	auto start = start_time(pid);
	if (!start)
		return std::nullopt;
	return ProcessRef{pid, *start};
}

bool ProcFs::alive(const ProcessRef &ref) const
{
	std::error_code ec;
	std::string stat = read_file(root_ + "/" + std::to_string(ref.pid) + "/stat", max_proc_file_size, ec);
	if (ec || parse_stat_start_time(stat) != ref.start_time)
		return false;
	auto state = parse_stat_state(stat);
	return state && *state != 'Z' && *state != 'X';
}

std::string ProcFs::comm(pid_t pid) const
{
	std::error_code ec;
	return trim_newline(read_file(root_ + "/" + std::to_string(pid) + "/comm", 256, ec));
}

std::string ProcFs::exe_name(pid_t pid) const
{
	std::string link = root_ + "/" + std::to_string(pid) + "/exe";
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
		std::string path =
			root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/children";
		std::string text = read_file(path, max_proc_file_size, ec);
		std::string_view rest = text;
		while (!rest.empty()) {
			std::size_t space = rest.find_first_of(" \n");
			if (auto child = to_number<pid_t>(rest.substr(0, space)))
				out.push_back(*child);
			rest.remove_prefix(space == std::string_view::npos ? rest.size() : space + 1);
		}
	}
	return out;
}

std::vector<pid_t> ProcFs::thread_ids(pid_t pid, std::error_code &ec) const
{
	ec.clear();
	return numeric_entries(root_ + "/" + std::to_string(pid) + "/task", ec);
}

std::string ProcFs::thread_name(pid_t pid, pid_t tid) const
{
	std::error_code ec;
	return trim_newline(read_file(
		root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm", 256, ec));
}

std::string ProcFs::thread_stat(pid_t pid, pid_t tid, std::error_code &ec) const
{
	return read_file(root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat",
			 max_proc_file_size, ec);
}

std::string ProcFs::thread_cgroup(pid_t pid, pid_t tid, std::error_code &ec) const
{
	return read_file(root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/cgroup",
			 max_proc_file_size, ec);
}

std::string ProcFs::process_cgroup(pid_t pid, std::error_code &ec) const
{
	return read_file(root_ + "/" + std::to_string(pid) + "/cgroup", max_proc_file_size, ec);
}

bool matches_vmm_name(const std::vector<std::string> &globs, std::string_view exe_name, std::string_view comm)
{
	std::string exe(exe_name), name(comm);
	return std::any_of(globs.begin(), globs.end(), [&](const std::string &glob) {
		return (!exe.empty() && ::fnmatch(glob.c_str(), exe.c_str(), 0) == 0) ||
		       (!name.empty() && ::fnmatch(glob.c_str(), name.c_str(), 0) == 0);
	});
}

std::optional<int> match_vcpu_name(const std::vector<std::string> &patterns, std::string_view name)
{
	for (const auto &pattern : patterns) {
		std::size_t at = pattern.find("{n}");
		if (at == std::string::npos)
			continue;
		std::string_view prefix = std::string_view(pattern).substr(0, at);
		std::string_view suffix = std::string_view(pattern).substr(at + 3);
		if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
		    !name.ends_with(suffix))
			continue;
		std::string_view digits =
			name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
		bool all_digits = std::all_of(digits.begin(), digits.end(),
					      [](char c) { return c >= '0' && c <= '9'; });
		if (!all_digits || (digits.size() > 1 && digits.front() == '0'))
			continue;
		if (auto index = to_number<int>(digits); index && *index >= 0)
			return index;
	}
	return std::nullopt;
}

std::optional<ProcessRef> find_vmm(const ProcFs &proc, pid_t pid, const std::vector<std::string> &globs,
				   unsigned max_depth)
{
	std::deque<std::pair<pid_t, unsigned>> queue{{pid, 0}};
	while (!queue.empty()) {
		auto [candidate, depth] = queue.front();
		queue.pop_front();
		auto ref = proc.process(candidate);
		if (!ref)
			continue; // exited meanwhile
		if (matches_vmm_name(globs, proc.exe_name(candidate), proc.comm(candidate))) {
			// The name could have changed (exec) between reading the start time and the names:
			// check.
			if (proc.start_time(candidate) == ref->start_time)
				return ref;
			continue;
		}
		if (depth < max_depth)
			for (pid_t child : proc.children(candidate))
				queue.emplace_back(child, depth + 1);
	}
	return std::nullopt;
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

std::vector<ThreadInfo> list_threads(const ProcFs &proc, pid_t pid, const std::vector<std::string> &patterns,
				     std::error_code &ec)
{
	std::vector<ThreadInfo> threads;
	for (pid_t tid : proc.thread_ids(pid, ec)) {
		std::error_code read_ec;
		std::string stat = proc.thread_stat(pid, tid, read_ec);
		auto name = parse_stat_comm(stat);
		auto start = parse_stat_start_time(stat);
		if (read_ec || !name || !start)
			continue; // exited meanwhile
		ThreadInfo info;
		info.tid = tid;
		info.name = std::string(*name);
		info.start_time = *start;
		info.vcpu = match_vcpu_name(patterns, info.name);
		threads.push_back(std::move(info));
	}
	return threads;
}

} // namespace vmmcg
