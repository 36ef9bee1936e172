#include "provision.h"

#include <fcntl.h>

#include <chrono>
#include <optional>
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

void write_or_throw(const CgroupMount &mount, const std::string &cgroup, const char *file,
		    const std::string &value)
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

// A v1 cpuset cgroup starts with empty cpus and mems and refuses tasks (ENOSPC) until they are set. One
// that existed already keeps what it has; one just made gets its parent's without being read first.
// `known` holds what this createRuntime wrote, so a child of a root it just seeded is not read again.
void seed_cpuset(const CgroupMount &mount, const std::string &cgroup, bool made,
		 std::map<std::string, std::string> &known)
{
	for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
		std::error_code ec;
		if (!made && !trimmed(mount.read_file(cgroup, file, ec)).empty())
			continue;
		std::string value;
		if (auto it = known.find(join_path(parent_path(cgroup), file)); it != known.end()) {
			value = it->second;
		} else {
			ec.clear();
			value = trimmed(mount.read_file(parent_path(cgroup), file, ec));
			if (ec)
				throw std::system_error(
					ec, "reading " + mount.describe(parent_path(cgroup), file));
		}
		write_or_throw(mount, cgroup, file, value);
		known[join_path(cgroup, file)] = value;
	}
}

void apply_limits(const CgroupMount &mount, const Target &target, const std::string &cgroup,
		  const OverheadLimits &limits)
{
	if (has_controller(target, "cpu")) {
		if (limits.cpu_shares)
			write_or_throw(mount, cgroup, "cpu.shares", std::to_string(*limits.cpu_shares));
		if (limits.cpu_period_us)
			write_or_throw(mount, cgroup, "cpu.cfs_period_us",
				       std::to_string(*limits.cpu_period_us));
		if (limits.cpu_quota_us)
			write_or_throw(mount, cgroup, "cpu.cfs_quota_us",
				       std::to_string(*limits.cpu_quota_us));
	}
	if (has_controller(target, "cpuset")) {
		if (limits.cpuset_cpus)
			write_or_throw(mount, cgroup, "cpuset.cpus", *limits.cpuset_cpus);
		if (limits.cpuset_mems)
			write_or_throw(mount, cgroup, "cpuset.mems", *limits.cpuset_mems);
	}
}

bool listed(const std::string &list, std::string_view name)
{
	return (" " + list + " ").find(" " + std::string(name) + " ") != std::string::npos;
}

// Controllers S offers and the threaded children need: enabled in S's subtree_control. The threaded
// subtree lets S keep its processes while doing so (cgroup-v2.rst, "Threads": cpu and cpuset are
// threaded controllers). Returns those this call enabled.
std::vector<std::string> enable_threaded_controllers(const CgroupMount &mount, const Target &target)
{
	std::vector<std::string> enabled;
	std::error_code ec;
	std::string available = trimmed(mount.read_file(target.sandbox, "cgroup.controllers", ec));
	std::string active = trimmed(mount.read_file(target.sandbox, "cgroup.subtree_control", ec));
	for (const char *name : {"cpu", "cpuset"}) {
		if (!listed(available, name)) {
			spdlog::info("{}: controller {} not available: not enabled",
				     mount.describe(target.sandbox), name);
			continue;
		}
		if (listed(active, name))
			continue;
		write_or_throw(mount, target.sandbox, "cgroup.subtree_control", std::string("+") + name);
		enabled.push_back(name);
	}
	return enabled;
}

// The container's CPU limits, as the runtime wrote them on S, go to S/vcpu. S's originals are saved.
void copy_limits_to_vcpu(const CgroupMount &mount, const Target &target,
			 std::map<std::string, std::string> &saved)
{
	for (const char *file : {"cpu.max", "cpu.weight", "cpuset.cpus", "cpuset.mems"}) {
		std::error_code ec;
		std::string value = trimmed(mount.read_file(target.sandbox, file, ec));
		if (ec == std::errc::no_such_file_or_directory || value.empty())
			continue; // controller not enabled on S, or nothing set
		if (ec)
			throw std::system_error(ec, "reading " + mount.describe(target.sandbox, file));
		std::error_code child_ec;
		mount.read_file(target.vcpu, file, child_ec);
		if (child_ec)
			continue; // the controller is not enabled for the children
		write_or_throw(mount, target.vcpu, file, value);
		if (std::string_view(file) == "cpu.max")
			saved.emplace(file, value);
	}
}

// Overhead limits, given in v1 terms, on S/overhead: quota/period -> cpu.max, shares -> cpu.weight with the
// conversion crun and runc use (cgroup-v2.rst's weight range 1..10000 from shares 2..262144).
void apply_v2_overhead_limits(const CgroupMount &mount, const Target &target, const OverheadLimits &limits)
{
	if (limits.cpu_quota_us || limits.cpu_period_us) {
		std::string quota = limits.cpu_quota_us && *limits.cpu_quota_us >= 0
					    ? std::to_string(*limits.cpu_quota_us)
					    : std::string("max");
		write_or_throw(mount, target.overhead, "cpu.max",
			       quota + " " + std::to_string(limits.cpu_period_us.value_or(100000)));
	}
	if (limits.cpu_shares)
		write_or_throw(mount, target.overhead, "cpu.weight",
			       std::to_string(1 + ((*limits.cpu_shares - 2) * 9999) / 262142));
	if (limits.cpuset_cpus)
		write_or_throw(mount, target.overhead, "cpuset.cpus", *limits.cpuset_cpus);
	if (limits.cpuset_mems)
		write_or_throw(mount, target.overhead, "cpuset.mems", *limits.cpuset_mems);
}

// Moves what is left in cgroup to its parent, then removes it. ENOENT is done; EBUSY is retried.
std::error_code remove_cgroup(const CgroupMount &mount, bool v2, const std::string &cgroup)
{
	using namespace std::chrono_literals;
	const char *file = v2 ? "cgroup.threads" : "tasks";
	std::string parent = parent_path(cgroup);
	auto delay = 5ms;
	std::error_code ec;
	// rmdir first: at poststop the container has exited and the cgroup is empty, so the tasks file need
	// not be read. Busy: move what is left to the parent, or give exiting tasks a moment.
	for (int attempt = 0; attempt < 10; ++attempt) {
		ec = mount.remove_dir(cgroup);
		if (!ec || ec == std::errc::no_such_file_or_directory)
			return {};
		if (ec != std::errc::device_or_resource_busy)
			return ec;
		std::error_code read_ec;
		std::vector<pid_t> ids = mount.read_ids(cgroup, file, read_ec);
		if (read_ec == std::errc::no_such_file_or_directory)
			return {};
		if (ids.empty()) {
			std::this_thread::sleep_for(delay); // exiting tasks keep a cgroup busy for a moment
			delay = std::min(delay * 2, std::chrono::milliseconds(200));
			continue;
		}
		UniqueFd to = mount.open_file(parent, file, O_WRONLY, read_ec);
		for (pid_t id : ids) {
			// ESRCH: the thread exited meanwhile, nothing to move.
			if (to.valid())
				if (std::error_code move_ec = write_id(to.get(), id);
				    move_ec && move_ec != std::errc::no_such_process)
					spdlog::warn("moving thread {} out of {}: {}", id,
						     mount.describe(cgroup), move_ec.message());
		}
	}
	return ec;
}

// A mount for cleanup: a failure is logged and counted, and cleanup goes on with the next one.
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

} // namespace

void rollback(const Layout &layout, const Provisioned &provisioned)
{
	restore_sandbox(layout, provisioned.enabled, provisioned.saved);
	for (auto it = provisioned.made.rbegin(); it != provisioned.made.rend(); ++it) {
		try {
			CgroupMount mount = CgroupMount::open(it->mount);
			if (std::error_code ec = remove_cgroup(mount, it->v2, it->path))
				spdlog::error("rollback: removing {}: {}", mount.describe(it->path),
					      ec.message());
		} catch (const std::exception &e) {
			spdlog::error("rollback: {}", e.what());
		}
	}
}

Provisioned provision(const Layout &layout, const OverheadLimits &limits)
{
	Provisioned result;
	ScopeExit undo([&] { rollback(layout, result); });

	for (const auto &target : layout.targets) {
		CgroupMount mount = CgroupMount::open(target.mount);
		std::map<std::string, std::string> seeded;
		for (const auto &dir : target.create) {
			std::error_code ec = mount.make_dir(dir.path);
			if (ec && ec != std::errc::file_exists)
				throw std::system_error(ec, "creating " + mount.describe(dir.path));
			if (!ec) {
				result.made.push_back({target.mount, dir.path, target.v2});
				result.created.push_back(mount.describe(dir.path));
			} else if (!mount.exists(dir.path)) {
				// EEXIST for something that is not a directory: an interface file of the
				// parent.
				throw std::system_error(errno_code(ENOTDIR),
							mount.describe(dir.path) +
								" exists and is not a cgroup");
			} else if (!dir.shared) {
				result.adopted.push_back(mount.describe(dir.path));
			}
			if (dir.threaded)
				write_or_throw(mount, dir.path, "cgroup.type", "threaded");
			if (!target.v2 && has_controller(target, "cpuset"))
				seed_cpuset(mount, dir.path, !ec, seeded);
			if (!dir.shared && !target.v2)
				apply_limits(mount, target, dir.path, limits);
		}
		if (target.v2) {
			result.enabled = enable_threaded_controllers(mount, target);
			copy_limits_to_vcpu(mount, target, result.saved);
			apply_v2_overhead_limits(mount, target, limits);
		}
	}
	undo.release();
	return result;
}

void relax_sandbox(const Layout &layout)
{
	for (const auto &target : layout.targets) {
		if (!target.v2)
			continue;
		CgroupMount mount = CgroupMount::open(target.mount);
		std::error_code ec;
		std::string current = trimmed(mount.read_file(target.sandbox, "cpu.max", ec));
		if (ec || current.starts_with("max"))
			continue;
		std::string period = current.substr(current.find(' ') + 1);
		write_or_throw(mount, target.sandbox, "cpu.max", "max " + period);
		spdlog::info("{}: cpu.max {} -> max (the limit is on {})", mount.describe(target.sandbox),
			     current, target.vcpu);
	}
}

std::size_t restore_sandbox(const Layout &layout, const std::vector<std::string> &enabled,
			    const std::map<std::string, std::string> &saved)
{
	std::size_t failures = 0;
	auto report = [&](const CgroupMount &mount, const std::string &cgroup, const char *file,
			  std::error_code ec) {
		if (ec && ec != std::errc::no_such_file_or_directory) {
			spdlog::error("restoring {}: {}", mount.describe(cgroup, file), ec.message());
			++failures;
		}
	};
	for (const auto &target : layout.targets) {
		if (!target.v2)
			continue;
		std::optional<CgroupMount> mount = open_for_cleanup(target.mount, failures);
		if (!mount)
			continue;
		for (const auto &[file, value] : saved)
			report(*mount, target.sandbox, file.c_str(),
			       mount->write_file(target.sandbox, file, value));
		for (const auto &name : enabled)
			report(*mount, target.sandbox, "cgroup.subtree_control",
			       mount->write_file(target.sandbox, "cgroup.subtree_control", "-" + name));
	}
	return failures;
}

std::size_t teardown(const Layout &layout)
{
	std::size_t failures = 0;
	for (const auto &target : layout.targets) {
		std::optional<CgroupMount> mount = open_for_cleanup(target.mount, failures);
		if (!mount)
			continue;
		for (auto it = target.create.rbegin(); it != target.create.rend(); ++it) {
			if (it->shared)
				continue;
			if (std::error_code ec = remove_cgroup(*mount, target.v2, it->path)) {
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
