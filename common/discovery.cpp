#include "discovery.h"

#include <dirent.h>
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <system_error>

#include "text.h"

namespace vmmcg {

bool matches_vmm_name(const std::vector<std::string> &globs, std::string_view exe_name, std::string_view comm)
{
	std::string exe(exe_name), name(comm);
	return std::any_of(globs.begin(), globs.end(), [&](const std::string &glob) {
		return (!exe.empty() && ::fnmatch(glob.c_str(), exe.c_str(), 0) == 0) ||
		       (!name.empty() && ::fnmatch(glob.c_str(), name.c_str(), 0) == 0);
	});
}

bool names_vmm(const std::vector<std::string> &globs, const std::vector<std::string> &args)
{
	constexpr std::string_view separators = " \t\n;&|()<>'\"`=";
	for (std::string_view arg : args) {
		for (std::size_t start = arg.find_first_not_of(separators);
		     start != std::string_view::npos;) {
			std::size_t end = std::min(arg.find_first_of(separators, start), arg.size());
			std::string_view word = arg.substr(start, end - start);
			if (matches_vmm_name(globs, word.substr(word.rfind('/') + 1), ""))
				return true;
			start = arg.find_first_not_of(separators, end);
		}
	}
	return false;
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
	auto root = proc.process(pid);
	return root ? find_vmm(proc, *root, globs, max_depth) : std::nullopt;
}

std::optional<ProcessRef> find_vmm(const ProcFs &proc, const ProcessRef &root,
				   const std::vector<std::string> &globs, unsigned max_depth)
{
	std::deque<std::pair<ProcessRef, unsigned>> queue{{root, 0}};
	while (!queue.empty()) {
		auto [ref, depth] = queue.front();
		queue.pop_front();
		if (matches_vmm_name(globs, proc.exe_name(ref.pid), proc.comm(ref.pid))) {
			// The names are those of the process whose start time was read before them, or its
			// pid was reused in between (by a process that may have any name): check.
			if (proc.process(ref.pid) == ref)
				return ref;
			continue;
		}
		if (depth >= max_depth)
			continue;
		std::vector<pid_t> children = proc.children(ref.pid);
		// The children of the process whose start time is known, or its pid was reused meanwhile.
		if (proc.process(ref.pid) != ref)
			continue;
		for (pid_t child : children)
			if (auto child_ref = proc.process(child))
				queue.emplace_back(*child_ref, depth + 1);
	}
	return std::nullopt;
}

std::vector<ThreadInfo> list_threads(const ProcFs &proc, pid_t pid, const std::vector<std::string> &patterns,
				     std::error_code &ec, std::size_t max_threads)
{
	return list_threads(TaskDir(proc, pid), patterns, ec, max_threads);
}

std::vector<ThreadInfo> list_threads(const TaskDir &tasks, const std::vector<std::string> &patterns,
				     std::error_code &ec, std::size_t max_threads)
{
	std::vector<ThreadInfo> threads;
	std::vector<pid_t> ids = tasks.ids(ec);
	if (ids.size() > max_threads) {
		ec = std::make_error_code(std::errc::argument_list_too_long);
		return threads;
	}
	for (pid_t tid : ids) {
		std::error_code read_ec;
		std::string line = tasks.read(tid, "stat", read_ec);
		auto stat = parse_stat(line);
		if (read_ec || !stat)
			continue; // exited meanwhile
		ThreadInfo info;
		info.tid = tid;
		info.name = std::string(stat->comm);
		info.start_time = stat->start_time;
		info.vcpu = match_vcpu_name(patterns, info.name);
		threads.push_back(std::move(info));
	}
	return threads;
}

KvmFds count_kvm_fds(const ProcFs &proc, pid_t pid)
{
	KvmFds fds;
	std::string dir = proc.path(pid, "fd");
	DIR *d = ::opendir(dir.c_str());
	if (!d)
		return fds;
	char target[64];
	while (struct dirent *entry = ::readdir(d)) {
		if (entry->d_name[0] == '.')
			continue;
		ssize_t n = ::readlinkat(::dirfd(d), entry->d_name, target, sizeof(target) - 1);
		std::string_view link(target, n > 0 ? static_cast<std::size_t>(n) : 0);
		if (link == "anon_inode:kvm-vm")
			fds.vm = true;
		else if (link.starts_with("anon_inode:kvm-vcpu:"))
			++fds.vcpus;
	}
	::closedir(d);
	return fds;
}

bool prove_vcpus(const ProcFs &proc, pid_t pid, std::vector<ThreadInfo> &threads, std::optional<KvmFds> &fds)
{
	auto marked = static_cast<std::size_t>(std::count_if(
		threads.begin(), threads.end(), [](const ThreadInfo &t) { return t.vcpu.has_value(); }));
	if (marked == 0)
		return false;
	if (!fds || fds->vcpus < marked)
		fds = count_kvm_fds(proc, pid);
	if (fds->vm && fds->vcpus >= marked)
		return true;
	for (auto &thread : threads)
		thread.vcpu.reset();
	return false;
}

void mark_vcpus(std::vector<ThreadInfo> &threads, const std::vector<pid_t> &vcpu_tids)
{
	std::map<pid_t, int> index;
	for (std::size_t i = 0; i < vcpu_tids.size(); ++i)
		index.emplace(vcpu_tids[i], static_cast<int>(i));
	for (auto &thread : threads) {
		auto it = index.find(thread.tid);
		thread.vcpu = it == index.end() ? std::nullopt : std::optional<int>(it->second);
	}
}

} // namespace vmmcg
