#include "cgroup_v2.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "cgroup_utils.h"
#include "errors.h"
#include "paths.h"
#include "systemd.h"
#include "text.h"

namespace vmmcg::cgroup_v2 {

std::uint64_t shares_to_weight(std::uint64_t shares)
{
	if (shares == 0)
		return 0;
	return 1 + ((shares - 2) * 9999) / 262142;
}

namespace {

constexpr const char *thread_file = "cgroup.threads";

// Controllers S offers and the threaded children need, enabled in S's subtree_control. The threaded
// subtree lets S keep its processes while doing so (cgroup-v2.rst: cpu and cpuset are threaded
// controllers; domain controllers such as memory cannot be enabled on a populated threaded root).
std::vector<std::string> enable_threaded_controllers(const CgroupMount &mount, const std::string &sandbox)
{
	std::vector<std::string> enabled;
	std::error_code ec;
	std::string available = mount.read_value(sandbox, "cgroup.controllers", ec);
	std::string active = mount.read_value(sandbox, "cgroup.subtree_control", ec);
	for (const char *name : {"cpu", "cpuset"}) {
		if (!has_word(available, name)) {
			spdlog::info("{}: controller {} not available: not enabled", mount.describe(sandbox),
				     name);
			continue;
		}
		if (has_word(active, name))
			continue;
		write_value(mount, sandbox, "cgroup.subtree_control", std::string("+") + name);
		enabled.push_back(name);
	}
	return enabled;
}

// The container's CPU limits, as the runtime wrote them on S, go to S/vcpu. S's cpu.max is saved.
void copy_limits_to_vcpu(const CgroupMount &mount, Layout &layout)
{
	for (const char *file : {"cpu.max", "cpu.weight", "cpuset.cpus", "cpuset.mems"}) {
		std::error_code ec;
		std::string value = mount.read_value(layout.sandbox, file, ec);
		if (ec == std::errc::no_such_file_or_directory || value.empty())
			continue; // controller not enabled on S, or nothing set
		if (ec)
			throw std::system_error(ec, "reading " + mount.describe(layout.sandbox, file));
		std::error_code child_ec;
		mount.read_file(layout.vcpu(), file, child_ec);
		if (child_ec)
			continue; // the controller is not enabled for the children
		write_value(mount, layout.vcpu(), file, value);
		if (std::string_view(file) == "cpu.max")
			layout.saved.emplace(file, value);
	}
}

// S's cpu.max ("max 100000" or "150000 100000") as quota and period.
std::pair<std::optional<std::int64_t>, std::uint64_t> parse_cpu_max(std::string_view value)
{
	std::vector<std::string_view> parts = split(value, ' ');
	std::uint64_t period =
		parts.size() == 2 ? to_number<std::uint64_t>(parts[1]).value_or(100000) : 100000;
	return {to_number<std::int64_t>(parts[0]), period};
}

// Overhead limits, given in v1 terms, on S/overhead: quota/period -> cpu.max, shares -> cpu.weight; the
// derived cap from S's own cpu.max, saved by copy_limits_to_vcpu.
void apply_overhead_limits(const CgroupMount &mount, const Layout &layout, const OverheadPolicy &policy)
{
	const CpuLimits &limits = policy.limits;
	std::uint64_t period = limits.period_us.value_or(100000);
	auto saved = layout.saved.find("cpu.max");
	auto [quota, container_period] = parse_cpu_max(saved == layout.saved.end() ? "max" : saved->second);
	std::optional<std::int64_t> cap = policy.quota(quota, container_period, period);
	if (cap || limits.period_us) {
		std::string value = cap && *cap >= 0 ? std::to_string(*cap) : std::string("max");
		write_value(mount, layout.overhead(), "cpu.max", value + " " + std::to_string(period));
	}
	if (limits.shares)
		write_value(mount, layout.overhead(), "cpu.weight",
			    std::to_string(shares_to_weight(*limits.shares)));
	write_cpuset(mount, layout.overhead(), limits);
}

class V2Backend final : public Backend
{
public:
	explicit V2Backend(Layout &layout) : layout_(layout) {}

	std::size_t provision(const OverheadPolicy &policy) override;
	void rollback() noexcept override;
	Moves place(const ProcFs &proc, const ProcessRef &vmm, const TaskDir &tasks,
		    const std::vector<ThreadInfo> &threads,
		    std::chrono::steady_clock::time_point deadline) override;
	void relax() override;
	bool follow_limits(const OverheadPolicy &policy) override;
	Teardown teardown() override;

private:
	// mkdir and cgroup.type "threaded"; the name of what this run made is kept for rollback.
	void make_threaded_child(const CgroupMount &mount, const std::string &cgroup);
	void check_vmm(const ProcFs &proc, const ProcessRef &vmm, bool &gone) const;
	// S's saved values back (but cpu.max where S is a unit's cgroup: systemd's), the controllers this
	// project enabled disabled; failures counted.
	std::size_t restore_sandbox(const CgroupMount &mount) const;
	bool restore_through_systemd(const CgroupMount &mount, const std::string &saved) const;
	// Removes each child, deepest first, noting it in `teardown` as "S/<name>".
	void remove_children(const CgroupMount &mount, const std::vector<std::string> &children,
			     Teardown &teardown) const;

	Layout &layout_;
	std::vector<std::string> made_;
	std::optional<ThreadMover> mover_;
};

void V2Backend::make_threaded_child(const CgroupMount &mount, const std::string &cgroup)
{
	std::error_code ec = mount.make_dir(cgroup);
	if (ec && ec != std::errc::file_exists)
		throw std::system_error(ec, "creating " + mount.describe(cgroup));
	if (ec && !mount.exists(cgroup))
		throw std::system_error(errno_code(ENOTDIR),
					mount.describe(cgroup) + " exists and is not a cgroup");
	if (ec)
		throw HostError(mount.describe(cgroup) + " exists: the hooks did not make it; not adopted");
	made_.push_back(cgroup);
	write_value(mount, cgroup, "cgroup.type", "threaded");
}

std::size_t V2Backend::provision(const OverheadPolicy &policy)
{
	try {
		CgroupMount mount = CgroupMount::open(layout_.mount);
		make_threaded_child(mount, layout_.vcpu());
		make_threaded_child(mount, layout_.overhead());
		layout_.enabled = enable_threaded_controllers(mount, layout_.sandbox);
		copy_limits_to_vcpu(mount, layout_);
		apply_overhead_limits(mount, layout_, policy);
	} catch (...) {
		rollback();
		throw;
	}
	return made_.size();
}

void V2Backend::rollback() noexcept
{
	try {
		CgroupMount mount = CgroupMount::open(layout_.mount);
		restore_sandbox(mount);
		Teardown ignored; // what went wrong is logged: rollback reports nothing beyond that
		remove_children(mount, {made_.rbegin(), made_.rend()}, ignored);
	} catch (const std::exception &e) {
		spdlog::error("rollback: {}", e.what());
	}
	made_.clear();
}

void V2Backend::check_vmm(const ProcFs &proc, const ProcessRef &vmm, bool &gone) const
{
	std::error_code ec;
	ProcCgroups where = parse_proc_cgroup(proc.read(vmm.pid, "cgroup", ec));
	gone = static_cast<bool>(ec);
	if (gone)
		return;
	auto it = where.find("");
	std::string path = it == where.end() ? "(none)" : it->second;
	if (path != layout_.sandbox && path != layout_.vcpu() && path != layout_.overhead())
		throw HostError("VMM pid " + std::to_string(vmm.pid) + " is in " + layout_.mount + path +
				", not in this container's cgroups: refusing to move it");
}

Moves V2Backend::place(const ProcFs &proc, const ProcessRef &vmm, const TaskDir &tasks,
		       const std::vector<ThreadInfo> &threads, std::chrono::steady_clock::time_point deadline)
{
	bool gone = false;
	check_vmm(proc, vmm, gone);
	if (gone)
		return Moves::vmm_exited();
	if (!mover_) {
		std::vector<Sorting> sortings;
		sortings.push_back({CgroupMount::open(layout_.mount),
				    "",
				    layout_.vcpu(),
				    layout_.overhead(),
				    {layout_.sandbox, layout_.vcpu(), layout_.overhead()},
				    thread_file,
				    true,
				    false});
		mover_.emplace(std::move(sortings));
	}
	return mover_->move(proc, tasks, threads, deadline);
}

// S's cpu.max to "max": through systemd where S is a unit whose CPUQuota= systemd owns (runc's scope), so
// that a daemon-reload keeps it; directly otherwise, or when systemd cannot be asked.
void lift_sandbox_limit(const CgroupMount &mount, const Layout &layout, const std::string &current)
{
	auto unit = unit_of_cgroup(layout.sandbox);
	if (unit && systemd_running() && set_unit_cpu_quota_infinity(*unit)) {
		std::error_code ec;
		if (mount.read_value(layout.sandbox, "cpu.max", ec).starts_with("max"))
			return;
	}
	std::string period = current.substr(current.find(' ') + 1);
	write_value(mount, layout.sandbox, "cpu.max", "max " + period);
}

void V2Backend::relax()
{
	if (layout_.relaxed)
		return;
	CgroupMount mount = CgroupMount::open(layout_.mount);
	std::error_code ec;
	std::string current = mount.read_value(layout_.sandbox, "cpu.max", ec);
	if (!ec && !current.starts_with("max")) {
		lift_sandbox_limit(mount, layout_, current);
		spdlog::info("{}: cpu.max {} -> max (the limit is on {})", mount.describe(layout_.sandbox),
			     current, layout_.vcpu());
	}
	layout_.relaxed = true;
}

bool V2Backend::follow_limits(const OverheadPolicy &policy)
{
	if (!layout_.relaxed)
		return false; // not placed yet: S still holds the limit, as it should
	CgroupMount mount = CgroupMount::open(layout_.mount);
	std::error_code ec;
	std::string current = mount.read_value(layout_.sandbox, "cpu.max", ec);
	if (ec || current.starts_with("max"))
		return false;
	write_value(mount, layout_.vcpu(), "cpu.max", current);
	layout_.saved["cpu.max"] = current;
	apply_overhead_limits(mount, layout_, policy);
	lift_sandbox_limit(mount, layout_, current);
	spdlog::info("{}: the container's CPU limit is now {}: on {}, and S relaxed again",
		     mount.describe(layout_.sandbox), current, layout_.vcpu());
	return true;
}

// Where S is a unit's cgroup, systemd owns its cpu.max (runc's scope: CPUQuota=) and holds what the hooks
// set through it (infinity): the saved limit goes back through systemd too, or a daemon-reload would lift it
// again. Nothing to do when S is gone (the runtime removed the scope: the usual poststop). False when the
// direct write is still to be made (no systemd, not a unit, or systemd refused).
bool V2Backend::restore_through_systemd(const CgroupMount &mount, const std::string &saved) const
{
	auto unit = unit_of_cgroup(layout_.sandbox);
	if (!unit || !systemd_running())
		return false;
	if (!mount.exists(layout_.sandbox))
		return true;
	auto [quota, period] = parse_cpu_max(saved);
	if (!quota || *quota < 0 || period == 0)
		return saved.starts_with("max"); // no limit was saved: systemd's infinity is it
	return set_unit_cpu_quota(*unit, static_cast<std::uint64_t>(*quota) * 1'000'000 / period);
}

std::size_t V2Backend::restore_sandbox(const CgroupMount &mount) const
{
	std::size_t failures = 0;
	auto report = [&](const std::string &file, std::error_code ec) {
		if (ec && ec != std::errc::no_such_file_or_directory) {
			spdlog::error("restoring {}: {}", mount.describe(layout_.sandbox, file),
				      ec.message());
			++failures;
		}
	};
	for (const auto &[file, value] : layout_.saved) {
		if (file == "cpu.max" && restore_through_systemd(mount, value))
			continue;
		report(file, mount.write_file(layout_.sandbox, file, value));
	}
	for (const auto &name : layout_.enabled)
		report("cgroup.subtree_control",
		       mount.write_file(layout_.sandbox, "cgroup.subtree_control", "-" + name));
	return failures;
}

// A live VMM (the wrapper's kill --all) back in S a process at a time: a tid written to S's cgroup.procs
// moves its whole thread group at once, so that threads it clones meanwhile are born in S and cannot keep
// a child busy, as they could against a drain thread by thread. After the VMM's exit (poststop) a child is
// empty and this reads one file.
void move_processes_to_sandbox(const CgroupMount &mount, const std::string &child)
{
	std::error_code ec;
	for (pid_t tid : mount.read_ids(child, thread_file, ec))
		if (std::error_code moved =
			    mount.write_file(parent_path(child), "cgroup.procs", std::to_string(tid));
		    moved && moved != std::errc::no_such_process)
			spdlog::debug("moving the process of thread {} to {}: {}", tid,
				      mount.describe(parent_path(child)), moved.message());
}

void V2Backend::remove_children(const CgroupMount &mount, const std::vector<std::string> &children,
				Teardown &teardown) const
{
	for (const auto &child : children) {
		move_processes_to_sandbox(mount, child);
		report_removal(mount, child, remove_cgroup(mount, child, thread_file),
			       "S" + child.substr(layout_.sandbox.size()), teardown);
	}
}

Teardown V2Backend::teardown()
{
	Teardown teardown;
	std::optional<CgroupMount> mount = open_for_cleanup(layout_.mount, teardown.failures);
	if (!mount)
		return teardown;
	remove_children(*mount, {layout_.overhead(), layout_.vcpu()}, teardown);
	teardown.failures += restore_sandbox(*mount);
	return teardown;
}

} // namespace

std::unique_ptr<Backend> make_backend(Layout &layout)
{
	return std::make_unique<V2Backend>(layout);
}

} // namespace vmmcg::cgroup_v2
