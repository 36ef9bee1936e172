#include "cgroup_v1.h"

#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "cgroup_utils.h"
#include "errors.h"
#include "paths.h"

namespace vmmcg::cgroup_v1 {

namespace {

constexpr const char *thread_file = "tasks";

// A v1 cpuset cgroup starts with empty cpus and mems and refuses tasks (ENOSPC) until they are set. One
// that existed already keeps what it has; one just made gets its parent's without being read first.
// `written` holds what this createRuntime wrote, so a child of a root it just seeded is not read again.
void seed_cpuset(const CgroupMount &mount, const std::string &cgroup, bool made,
		 std::map<std::string, std::string> &written)
{
	for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
		std::error_code ec;
		if (!made && !mount.read_value(cgroup, file, ec).empty())
			continue;
		std::string parent_file = join_path(parent_path(cgroup), file);
		std::string value;
		if (auto it = written.find(parent_file); it != written.end()) {
			value = it->second;
		} else {
			ec.clear();
			value = mount.read_value(parent_path(cgroup), file, ec);
			if (ec)
				throw std::system_error(
					ec, "reading " + mount.describe(parent_path(cgroup), file));
		}
		write_value(mount, cgroup, file, value);
		written[join_path(cgroup, file)] = value;
	}
}

void apply_limits(const CgroupMount &mount, const Hierarchy &hierarchy, const CpuLimits &limits)
{
	const std::string &cgroup = hierarchy.overhead;
	if (hierarchy.has("cpu")) {
		if (limits.shares)
			write_value(mount, cgroup, "cpu.shares", std::to_string(*limits.shares));
		if (limits.period_us)
			write_value(mount, cgroup, "cpu.cfs_period_us", std::to_string(*limits.period_us));
		if (limits.quota_us)
			write_value(mount, cgroup, "cpu.cfs_quota_us", std::to_string(*limits.quota_us));
	}
	if (hierarchy.has("cpuset"))
		write_cpuset(mount, cgroup, limits);
}

class V1Backend final : public Backend
{
public:
	explicit V1Backend(Layout &layout) : layout_(layout) {}

	std::size_t provision(const CpuLimits &limits) override;
	void rollback() noexcept override;
	Moves place(const ProcFs &proc, const ProcessRef &vmm,
		    const std::vector<ThreadInfo> &threads) override;
	void relax() override {} // O is outside S from the start: nothing binds the overhead to S's limit
	std::size_t teardown() override;

private:
	struct Made {
		std::string mount;
		std::string path;
	};
	// mkdir; false when it existed already. Throws for anything else, and for a file of that name.
	bool make(const CgroupMount &mount, const std::string &cgroup);
	void provision_hierarchy(const Hierarchy &hierarchy, const CpuLimits &limits);
	// Where the VMM's main thread is in each hierarchy; throws HostError if outside S and O.
	std::optional<ProcCgroups> check_vmm(const ProcFs &proc, const ProcessRef &vmm) const;
	// The whole process to O where it is still in S. False when the VMM is gone.
	bool move_process(const ProcessRef &vmm, const ProcCgroups &where);
	ThreadMover &mover();

	Layout &layout_;
	std::vector<Made> made_; // every cgroup provision() made, shared ones included: what rollback removes
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

void V1Backend::provision_hierarchy(const Hierarchy &hierarchy, const CpuLimits &limits)
{
	CgroupMount mount = CgroupMount::open(hierarchy.mount);
	std::map<std::string, std::string> seeded;
	for (const auto &dir : hierarchy.shared) {
		bool made = make(mount, dir);
		if (hierarchy.has("cpuset"))
			seed_cpuset(mount, dir, made, seeded);
	}
	bool made = make(mount, hierarchy.overhead);
	if (!made)
		spdlog::warn("adopted existing {}", mount.describe(hierarchy.overhead));
	if (hierarchy.has("cpuset"))
		seed_cpuset(mount, hierarchy.overhead, made, seeded);
	apply_limits(mount, hierarchy, limits);
}

std::size_t V1Backend::provision(const CpuLimits &limits)
{
	try {
		for (const auto &hierarchy : layout_.hierarchies)
			provision_hierarchy(hierarchy, limits);
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
			if (std::error_code ec = remove_cgroup(mount, it->path, thread_file))
				spdlog::error("rollback: removing {}: {}", mount.describe(it->path),
					      ec.message());
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
					    false});
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

Moves V1Backend::place(const ProcFs &proc, const ProcessRef &vmm, const std::vector<ThreadInfo> &threads)
{
	std::optional<ProcCgroups> where = check_vmm(proc, vmm);
	if (!where || !move_process(vmm, *where))
		return Moves::vmm_exited();
	return mover().move(proc, vmm.pid, threads);
}

std::size_t V1Backend::teardown()
{
	std::size_t failures = 0;
	for (const auto &hierarchy : layout_.hierarchies) {
		std::optional<CgroupMount> mount = open_for_cleanup(hierarchy.mount, failures);
		if (!mount)
			continue;
		if (std::error_code ec = remove_cgroup(*mount, hierarchy.overhead, thread_file)) {
			spdlog::error("removing {}: {}", mount->describe(hierarchy.overhead), ec.message());
			++failures;
		}
	}
	return failures;
}

} // namespace

std::unique_ptr<Backend> make_backend(Layout &layout)
{
	return std::make_unique<V1Backend>(layout);
}

} // namespace vmmcg::cgroup_v1
