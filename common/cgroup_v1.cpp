#include "cgroup_v1.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "cgroup_utils.h"
#include "errors.h"
#include "paths.h"
#include "text.h"

namespace vmmcg::cgroup_v1 {

namespace {

constexpr const char *thread_file = "tasks";

// A v1 cpuset cgroup starts with empty cpus and mems and refuses tasks (ENOSPC) until they are set: one
// this run made gets those of `source`, without reading them again when this run just wrote them there.
void seed_cpuset(const CgroupMount &mount, const std::string &cgroup, const std::string &source,
		 std::map<std::string, std::string> &written)
{
	for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
		std::string value;
		if (auto it = written.find(join_path(source, file)); it != written.end()) {
			value = it->second;
		} else {
			std::error_code ec;
			value = mount.read_value(source, file, ec);
			if (ec)
				throw std::system_error(ec, "reading " + mount.describe(source, file));
		}
		write_value(mount, cgroup, file, value);
		written[join_path(cgroup, file)] = value;
	}
}

// A shared cgroup that existed is never changed: with an empty cpuset it cannot take O. One that another
// createRuntime has just made (the first containers of a node, at once) is seeded by it a moment later
// (mkdir, then cpuset.cpus, then cpuset.mems): waited for, about 130 ms at most, before it is refused.
void check_cpuset(const CgroupMount &mount, const std::string &cgroup)
{
	using namespace std::chrono_literals;
	for (auto wait = 1ms;; wait *= 2) {
		const char *empty = nullptr;
		for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
			std::error_code ec;
			if (mount.read_value(cgroup, file, ec).empty()) {
				empty = file;
				break;
			}
		}
		if (!empty)
			return;
		if (wait > 64ms)
			throw HostError(mount.describe(cgroup, empty) +
					" is empty: the hooks do not change a cgroup they did not create "
					"(give it CPUs "
					"and memory nodes, or remove it so that the hooks create it)");
		std::this_thread::sleep_for(wait);
	}
}

// The container's CPU limit in this hierarchy, as the runtime set it on S.
std::pair<std::optional<std::int64_t>, std::uint64_t> container_quota(const CgroupMount &mount,
								      const Hierarchy &hierarchy)
{
	std::error_code ec;
	auto quota = to_number<std::int64_t>(mount.read_value(hierarchy.sandbox, "cpu.cfs_quota_us", ec));
	auto period = to_number<std::uint64_t>(mount.read_value(hierarchy.sandbox, "cpu.cfs_period_us", ec));
	return {quota, period.value_or(100000)};
}

void apply_limits(const CgroupMount &mount, const Hierarchy &hierarchy, const OverheadPolicy &policy)
{
	const std::string &cgroup = hierarchy.overhead;
	const CpuLimits &limits = policy.limits;
	if (hierarchy.has("cpu")) {
		if (limits.shares)
			write_value(mount, cgroup, "cpu.shares", std::to_string(*limits.shares));
		std::uint64_t period = limits.period_us.value_or(100000);
		if (limits.period_us)
			write_value(mount, cgroup, "cpu.cfs_period_us", std::to_string(period));
		auto [quota, container_period] = container_quota(mount, hierarchy);
		if (auto cap = policy.quota(quota, container_period, period))
			write_value(mount, cgroup, "cpu.cfs_quota_us", std::to_string(*cap));
	}
	if (hierarchy.has("cpuset"))
		write_cpuset(mount, cgroup, limits);
}

class V1Backend final : public Backend
{
public:
	explicit V1Backend(Layout &layout) : layout_(layout) {}

	std::size_t provision(const OverheadPolicy &policy) override;
	void rollback() noexcept override;
	Moves place(const ProcFs &proc, const ProcessRef &vmm, const TaskDir &tasks,
		    const std::vector<ThreadInfo> &threads,
		    std::chrono::steady_clock::time_point deadline) override;
	// The vCPUs are in S, so they follow S's limit by themselves; O's derived cap follows it here.
	bool follow_limits(const OverheadPolicy &policy) override;
	void relax() override {} // O is outside S from the start: nothing binds the overhead to S's limit
	Teardown teardown() override;

private:
	// A cgroup provision() made: its hierarchy's mount and its path there.
	struct MadeCgroup {
		std::string mount;
		std::string path;
	};
	// mkdir; false when it existed already. Throws for anything else, and for a file of that name.
	bool make(const CgroupMount &mount, const std::string &cgroup);
	void provision_hierarchy(const Hierarchy &hierarchy, const OverheadPolicy &policy);
	// Where the VMM's main thread is in each hierarchy; throws HostError if outside S and O.
	std::optional<ProcCgroups> check_vmm(const ProcFs &proc, const ProcessRef &vmm) const;
	// The whole process to O where it is still in S. False when the VMM is gone.
	bool move_process(const ProcessRef &vmm, const ProcCgroups &where);
	void return_strays(const ProcFs &proc, const ProcessRef &vmm);
	ThreadMover &mover();

	Layout &layout_;
	// Every cgroup provision() made, shared ones included: what rollback removes.
	std::vector<MadeCgroup> made_;
	std::optional<ThreadMover> mover_;
};

bool V1Backend::make(const CgroupMount &mount, const std::string &cgroup)
{
	std::error_code ec = mount.make_dir(cgroup);
	if (ec && ec != std::errc::file_exists)
		throw std::system_error(ec, "creating " + mount.describe(cgroup));
	if (!ec) {
		made_.push_back({mount.path(), cgroup});
		spdlog::debug("created {}", mount.describe(cgroup));
		return true;
	}
	// EEXIST for something that is not a directory: an interface file of the parent.
	if (!mount.exists(cgroup))
		throw std::system_error(errno_code(ENOTDIR),
					mount.describe(cgroup) + " exists and is not a cgroup");
	return false;
}

void V1Backend::provision_hierarchy(const Hierarchy &hierarchy, const OverheadPolicy &policy)
{
	CgroupMount mount = CgroupMount::open(hierarchy.mount);
	std::map<std::string, std::string> seeded;
	bool cpuset = hierarchy.has("cpuset");
	for (const auto &dir : hierarchy.shared) {
		bool made = make(mount, dir);
		if (cpuset && made)
			seed_cpuset(mount, dir, parent_path(dir), seeded);
		else if (cpuset)
			check_cpuset(mount, dir);
	}
	if (!make(mount, hierarchy.overhead))
		throw HostError(
			mount.describe(hierarchy.overhead) +
			" exists: another instance of this container owns it, or a stale one; not adopted");
	if (cpuset)
		seed_cpuset(mount, hierarchy.overhead, hierarchy.cpuset_source, seeded);
	apply_limits(mount, hierarchy, policy);
}

std::size_t V1Backend::provision(const OverheadPolicy &policy)
{
	try {
		for (const auto &hierarchy : layout_.hierarchies)
			provision_hierarchy(hierarchy, policy);
	} catch (...) {
		rollback();
		throw;
	}
	return made_.size();
}

void V1Backend::rollback() noexcept
{
	for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
		try {
			CgroupMount mount = CgroupMount::open(it->mount);
			Teardown ignored; // logged: rollback reports nothing beyond that
			report_removal(mount, it->path, remove_cgroup(mount, it->path, thread_file), it->path,
				       ignored);
		} catch (const std::exception &e) {
			spdlog::error("rollback: {}", e.what());
		}
	}
	made_.clear();
}

ThreadMover &V1Backend::mover()
{
	if (!mover_) {
		std::vector<Sorting> sortings;
		for (const auto &h : layout_.hierarchies)
			sortings.push_back({CgroupMount::open(h.mount),
					    h.proc_key,
					    h.sandbox,
					    h.overhead,
					    {h.sandbox, h.overhead},
					    thread_file,
					    false,
					    true});
		mover_.emplace(std::move(sortings));
	}
	return *mover_;
}

std::optional<ProcCgroups> V1Backend::check_vmm(const ProcFs &proc, const ProcessRef &vmm) const
{
	std::error_code ec;
	ProcCgroups where = parse_proc_cgroup(proc.read(vmm.pid, "cgroup", ec));
	if (ec)
		return std::nullopt; // gone
	for (const auto &h : layout_.hierarchies) {
		auto it = where.find(h.proc_key);
		std::string path = it == where.end() ? "(none)" : it->second;
		if (path != h.sandbox && path != h.overhead)
			throw HostError("VMM pid " + std::to_string(vmm.pid) + " is in " + h.mount + path +
					", not in this container's cgroups: refusing to move it");
	}
	return where;
}

bool V1Backend::move_process(const ProcessRef &vmm, const ProcCgroups &where)
{
	for (const auto &sorting : mover().sortings()) {
		// Only a VMM still in S: once its main thread is in O, an earlier stage moved the group, and
		// moving it again would take the vCPU threads out of S until this pass put them back (the
		// settler after poststart, a second settle in one process).
		if (auto it = where.find(sorting.proc_key);
		    it != where.end() && it->second == sorting.overhead)
			continue;
		std::error_code ec =
			sorting.mount.write_file(sorting.overhead, "cgroup.procs", std::to_string(vmm.pid));
		if (is_gone(ec))
			return false;
		if (ec)
			throw std::system_error(
				ec, "moving VMM pid " + std::to_string(vmm.pid) + " to " +
					    sorting.mount.describe(sorting.overhead, "cgroup.procs"));
	}
	return true;
}

// Processes in O other than the VMM (children it forked after it was moved) go back to S: only the VMM's
// own threads run outside the container's CPU limit. A listed pid may have exited since the list was read
// and been taken by a process of the host: only a process still in O is moved.
// One line per hierarchy and pass however many there are: a container that forks a thousand children
// must not write a thousand log lines a pass.
void V1Backend::return_strays(const ProcFs &proc, const ProcessRef &vmm)
{
	constexpr std::size_t shown = 8;
	for (auto &sorting : mover_->sortings()) {
		std::error_code ec;
		std::vector<pid_t> moved;
		std::vector<pid_t> failed;
		std::error_code first_error;
		for (pid_t pid : sorting.mount.read_ids(sorting.overhead, "cgroup.procs", ec)) {
			if (pid == vmm.pid)
				continue;
			std::error_code read_ec;
			ProcCgroups now = parse_proc_cgroup(proc.read(pid, "cgroup", read_ec));
			auto in = now.find(sorting.proc_key);
			if (read_ec || in == now.end() || in->second != sorting.overhead)
				continue;
			std::error_code move_ec =
				sorting.mount.write_file(sorting.vcpu, "cgroup.procs", std::to_string(pid));
			if (move_ec && !first_error)
				first_error = move_ec;
			(move_ec ? failed : moved).push_back(pid);
		}
		auto listed = [&](const std::vector<pid_t> &pids) {
			std::string text;
			for (std::size_t i = 0; i < pids.size() && i < shown; ++i)
				text += (i ? " " : "") + std::to_string(pids[i]);
			return pids.size() > shown ? text + " …" : text;
		};
		if (!moved.empty())
			spdlog::warn("{} process(es) in {} not the VMM: moved to S (pid {})", moved.size(),
				     sorting.mount.describe(sorting.overhead), listed(moved));
		if (!failed.empty())
			spdlog::warn(
				"{} process(es) in {} not the VMM: could not move them to S: {} (pid {})",
				failed.size(), sorting.mount.describe(sorting.overhead),
				first_error.message(), listed(failed));
	}
}

Moves V1Backend::place(const ProcFs &proc, const ProcessRef &vmm, const TaskDir &tasks,
		       const std::vector<ThreadInfo> &threads, std::chrono::steady_clock::time_point deadline)
{
	std::optional<ProcCgroups> where = check_vmm(proc, vmm);
	if (!where || !move_process(vmm, *where))
		return Moves::vmm_exited();
	return_strays(proc, vmm);
	return mover().move(proc, tasks, threads, deadline);
}

bool V1Backend::follow_limits(const OverheadPolicy &policy)
{
	bool changed = false;
	for (const auto &hierarchy : layout_.hierarchies) {
		if (!hierarchy.has("cpu") || policy.limits.quota_us)
			continue;
		CgroupMount mount = CgroupMount::open(hierarchy.mount);
		auto [quota, container_period] = container_quota(mount, hierarchy);
		std::error_code ec;
		auto period = to_number<std::uint64_t>(
			mount.read_value(hierarchy.overhead, "cpu.cfs_period_us", ec));
		std::int64_t cap =
			policy.quota(quota, container_period, period.value_or(100000)).value_or(-1);
		auto now =
			to_number<std::int64_t>(mount.read_value(hierarchy.overhead, "cpu.cfs_quota_us", ec));
		if (ec || now == cap)
			continue;
		write_value(mount, hierarchy.overhead, "cpu.cfs_quota_us", std::to_string(cap));
		spdlog::info("{}: the overhead's cap follows the container's limit: {}",
			     mount.describe(hierarchy.overhead), cap);
		changed = true;
	}
	return changed;
}

Teardown V1Backend::teardown()
{
	Teardown teardown;
	for (const auto &hierarchy : layout_.hierarchies) {
		std::optional<CgroupMount> mount = open_for_cleanup(hierarchy.mount, teardown.failures);
		if (!mount)
			continue;
		// What is left in O goes back under the container's limits, not to O's parent.
		std::error_code ec =
			remove_cgroup(*mount, hierarchy.overhead, thread_file, hierarchy.sandbox);
		// Named by its hierarchy's mount: "O in cpu,cpuacct".
		report_removal(*mount, hierarchy.overhead, ec,
			       "O in " + hierarchy.mount.substr(hierarchy.mount.rfind('/') + 1), teardown);
	}
	return teardown;
}

} // namespace

std::unique_ptr<Backend> make_backend(Layout &layout)
{
	return std::make_unique<V1Backend>(layout);
}

} // namespace vmmcg::cgroup_v1
