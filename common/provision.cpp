#include "provision.h"

#include <fcntl.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "cgroupfs.h"
#include "errors.h"
#include "paths.h"
#include "scope_exit.h"

namespace vmmcg {

namespace {

bool has_controller(const Target &target, std::string_view name)
{
	std::string_view list = target.controllers;
	while (!list.empty()) {
		std::size_t comma = list.find(',');
		if (list.substr(0, comma) == name)
			return true;
		list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
	}
	return false;
}

void write_or_throw(const CgroupMount &mount, const std::string &cgroup, const char *file, const std::string &value)
{
	if (std::error_code ec = mount.write_file(cgroup, file, value))
		throw std::system_error(ec, "writing '" + value + "' to " + mount.describe(cgroup, file));
}

std::string trimmed(std::string text)
{
	while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
		text.pop_back();
	return text;
}

// A v1 cpuset cgroup starts with empty cpus and mems and refuses tasks (ENOSPC) until they are set.
void seed_cpuset(const CgroupMount &mount, const std::string &cgroup)
{
	for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
		std::error_code ec;
		if (!trimmed(mount.read_file(cgroup, file, ec)).empty())
			continue;
		std::string parent = trimmed(mount.read_file(parent_path(cgroup), file, ec));
		if (ec)
			throw std::system_error(ec, "reading " + mount.describe(parent_path(cgroup), file));
		write_or_throw(mount, cgroup, file, parent);
	}
}

void apply_limits(const CgroupMount &mount, const Target &target, const std::string &cgroup,
		  const OverheadLimits &limits)
{
	if (has_controller(target, "cpu")) {
		if (limits.cpu_shares)
			write_or_throw(mount, cgroup, "cpu.shares", std::to_string(*limits.cpu_shares));
		if (limits.cpu_period_us)
			write_or_throw(mount, cgroup, "cpu.cfs_period_us", std::to_string(*limits.cpu_period_us));
		if (limits.cpu_quota_us)
			write_or_throw(mount, cgroup, "cpu.cfs_quota_us", std::to_string(*limits.cpu_quota_us));
	}
	if (has_controller(target, "cpuset")) {
		if (limits.cpuset_cpus)
			write_or_throw(mount, cgroup, "cpuset.cpus", *limits.cpuset_cpus);
		if (limits.cpuset_mems)
			write_or_throw(mount, cgroup, "cpuset.mems", *limits.cpuset_mems);
	}
}

// Controllers S offers and the threaded children need: enabled in S's subtree_control. The threaded
// subtree lets S keep its processes while doing so (cgroup-v2.rst, "Threads").
void enable_threaded_controllers(const CgroupMount &mount, const Target &target)
{
	std::error_code ec;
	std::string available = " " + trimmed(mount.read_file(target.sandbox, "cgroup.controllers", ec)) + " ";
	for (const char *name : {"cpu", "cpuset"}) {
		if (available.find(std::string(" ") + name + " ") == std::string::npos) {
			spdlog::info("{}: controller {} not available: not enabled", mount.describe(target.sandbox), name);
			continue;
		}
		write_or_throw(mount, target.sandbox, "cgroup.subtree_control", std::string("+") + name);
	}
}

// Moves what is left in cgroup to its parent, then removes it. ENOENT is done; EBUSY is retried.
std::error_code remove_cgroup(const CgroupMount &mount, const Target &target, const std::string &cgroup)
{
	using namespace std::chrono_literals;
	const char *file = target.v2 ? "cgroup.threads" : "tasks";
	std::string parent = parent_path(cgroup);
	auto delay = 5ms;
	std::error_code ec;
	for (int attempt = 0; attempt < 10; ++attempt) {
		std::error_code read_ec;
		std::vector<pid_t> ids = mount.read_ids(cgroup, file, read_ec);
		if (read_ec == std::errc::no_such_file_or_directory)
			return {};
		if (!ids.empty()) {
			UniqueFd to = mount.open_file(parent, file, O_WRONLY, read_ec);
			for (pid_t id : ids) {
				// ESRCH: the thread exited meanwhile, nothing to move.
				if (to.valid())
					if (std::error_code move_ec = write_id(to.get(), id); move_ec && move_ec != std::errc::no_such_process)
						spdlog::warn("moving thread {} out of {}: {}", id, mount.describe(cgroup), move_ec.message());
			}
		}
		ec = mount.remove_dir(cgroup);
		if (!ec || ec == std::errc::no_such_file_or_directory)
			return {};
		if (ec != std::errc::device_or_resource_busy)
			return ec;
		std::this_thread::sleep_for(delay); // exiting tasks keep a cgroup busy for a moment
		delay = std::min(delay * 2, std::chrono::milliseconds(200));
	}
	return ec;
}

} // namespace

Provisioned provision(const Layout &layout, const OverheadLimits &limits)
{
	Provisioned result;
	struct Made {
		const Target *target;
		std::string path;
	};
	std::vector<Made> made;
	ScopeExit rollback([&] {
		for (auto it = made.rbegin(); it != made.rend(); ++it) {
			try {
				CgroupMount mount = CgroupMount::open(it->target->mount);
				if (std::error_code ec = remove_cgroup(mount, *it->target, it->path))
					spdlog::error("rollback: removing {}: {}", mount.describe(it->path), ec.message());
			} catch (const std::exception &e) {
				spdlog::error("rollback: {}", e.what());
			}
		}
	});

	for (const auto &target : layout.targets) {
		CgroupMount mount = CgroupMount::open(target.mount);
		for (const auto &dir : target.create) {
			std::error_code ec = mount.make_dir(dir.path);
			if (ec && ec != std::errc::file_exists)
				throw std::system_error(ec, "creating " + mount.describe(dir.path));
			if (!ec) {
				made.push_back({&target, dir.path});
				result.created.push_back(mount.describe(dir.path));
			} else if (!dir.shared) {
				result.adopted.push_back(mount.describe(dir.path));
			}
			if (dir.threaded)
				write_or_throw(mount, dir.path, "cgroup.type", "threaded");
			if (!target.v2 && has_controller(target, "cpuset"))
				seed_cpuset(mount, dir.path);
			if (!dir.shared && !target.v2)
				apply_limits(mount, target, dir.path, limits);
		}
		if (target.v2)
			enable_threaded_controllers(mount, target);
	}
	rollback.release();
	return result;
}

std::size_t teardown(const Layout &layout)
{
	std::size_t failures = 0;
	for (const auto &target : layout.targets) {
		std::optional<CgroupMount> mount;
		try {
			mount.emplace(CgroupMount::open(target.mount));
		} catch (const std::exception &e) {
			spdlog::error("{}", e.what());
			++failures;
			continue;
		}
		for (auto it = target.create.rbegin(); it != target.create.rend(); ++it) {
			if (it->shared)
				continue;
			if (std::error_code ec = remove_cgroup(*mount, target, it->path)) {
				spdlog::error("removing {}: {}", mount->describe(it->path), ec.message());
				++failures;
			} else {
				spdlog::debug("removed {}", mount->describe(it->path));
			}
		}
	}
	return failures;
}

} // namespace vmmcg
