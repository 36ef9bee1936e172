#include "inspect.h"

#include <algorithm>
#include <variant>

#include "cgroupfs.h"
#include "discovery.h"
#include "host.h"
#include "text.h"

namespace vmmcg::ctl {

namespace {

std::optional<CgroupMount> try_open(const std::string &path)
{
	try {
		return CgroupMount::open(path);
	} catch (const std::exception &) {
		return std::nullopt;
	}
}

CgroupRef cgroup_ref(const std::optional<CgroupMount> &mount, const std::string &path)
{
	return {path, mount && mount->exists(path)};
}

HierarchyStatus v1_hierarchy(const cgroup_v1::Hierarchy &h)
{
	auto mount = try_open(h.mount);
	CgroupRef sandbox = cgroup_ref(mount, h.sandbox);
	return {h.proc_key, h.mount, h.controllers, sandbox, sandbox, cgroup_ref(mount, h.overhead)};
}

HierarchyStatus v2_hierarchy(const cgroup_v2::Layout &layout)
{
	auto mount = try_open(layout.mount);
	std::vector<std::string> controllers;
	std::error_code ec;
	std::string enabled = mount ? mount->read_value(layout.sandbox, "cgroup.subtree_control", ec) : "";
	for (auto word : split(enabled, ' '))
		if (!word.empty())
			controllers.emplace_back(word);
	return {"",
		layout.mount,
		controllers,
		cgroup_ref(mount, layout.sandbox),
		cgroup_ref(mount, layout.vcpu()),
		cgroup_ref(mount, layout.overhead())};
}

// Sandbox-only: S is wherever the container's process (or its VMM) is, in the cpu hierarchy or cgroup2.
std::optional<HierarchyStatus> sandbox_hierarchy(const Record &record, const ProcFs &proc, pid_t member)
{
	std::error_code ec;
	std::string text = proc.read(member, "cgroup", ec);
	if (ec)
		return std::nullopt;
	ProcCgroups where = parse_proc_cgroup(text);
	Mounts mounts = discover_mounts(record.host);
	std::string key = record.host == HostMode::v2 ? "" : "cpu";
	auto v1 = mounts.v1.find("cpu");
	std::string mount = key.empty() ? mounts.unified : v1 == mounts.v1.end() ? "" : v1->second;
	auto it = where.find(key);
	if (it == where.end() || mount.empty())
		return std::nullopt;
	CgroupRef sandbox = cgroup_ref(try_open(mount), it->second);
	return HierarchyStatus{key, mount, {key.empty() ? "cgroup2" : "cpu"}, sandbox, sandbox, sandbox};
}

ProcessStatus process_status(const ProcFs &proc, const ProcessRef &ref)
{
	return {ref.pid, ref.start_time, proc.alive(ref)};
}

} // namespace

std::optional<VmmStatus> current_vmm(const Record &record, const Config &config, const ProcFs &proc)
{
	// As poststart finds it: from the container's process. The record's pid is believed only where that
	// finds none (the container's process is gone): it may name another process by now, in a record
	// left stale or forged.
	if (record.container && proc.alive(*record.container))
		if (auto found =
			    find_vmm(proc, record.container->pid, config.vmm_names, config.vmm_search_depth))
			return VmmStatus{{found->pid, found->start_time, true},
					 proc.comm(found->pid),
					 record.vmm == found};
	if (record.vmm && proc.alive(*record.vmm))
		return VmmStatus{process_status(proc, *record.vmm), proc.comm(record.vmm->pid), true};
	if (record.vmm)
		return VmmStatus{{record.vmm->pid, record.vmm->start_time, false}, "", true};
	return std::nullopt;
}

namespace {

// QMP's vCPU threads are in the record (their names need not match a pattern).
void mark_recorded(std::vector<ThreadInfo> &threads, const Record &record)
{
	if (record.vcpu_source != "qmp")
		return;
	for (auto &thread : threads) {
		auto it = std::find(record.vcpus.begin(), record.vcpus.end(), thread.tid);
		if (it != record.vcpus.end() && !thread.vcpu)
			thread.vcpu = static_cast<int>(it - record.vcpus.begin());
	}
}

std::map<std::string, std::string> thread_cgroups(const ProcFs &proc, pid_t vmm, pid_t tid,
						  const std::vector<HierarchyStatus> &hierarchies)
{
	std::map<std::string, std::string> out;
	std::error_code ec;
	std::string text = proc.read_task(vmm, tid, "cgroup", ec);
	if (ec)
		return out; // exited meanwhile
	ProcCgroups where = parse_proc_cgroup(text);
	for (const auto &h : hierarchies)
		if (auto it = where.find(h.key); it != where.end())
			out[h.key] = it->second;
	return out;
}

std::uint64_t cpu_ns_of(const std::string &stat_line)
{
	auto ticks = parse_cpu_ticks(stat_line);
	return ticks ? *ticks * static_cast<std::uint64_t>(clock_tick().count()) : 0;
}

// ---- CPU figures

std::map<std::string, std::uint64_t, std::less<>> read_cpu_stat(const std::optional<CgroupMount> &mount,
								const std::string &cgroup)
{
	std::error_code ec;
	if (!mount)
		return {};
	std::string text = mount->read_file(cgroup, "cpu.stat", ec);
	return ec ? std::map<std::string, std::uint64_t, std::less<>>{} : parse_cpu_stat(text);
}

std::optional<std::uint64_t> value_of(const std::map<std::string, std::uint64_t, std::less<>> &stat,
				      std::string_view key, std::uint64_t scale = 1)
{
	auto it = stat.find(key);
	return it == stat.end() ? std::nullopt : std::optional(it->second * scale);
}

// Throttling (and on v2 usage) of one cgroup, from its cpu.stat.
SideFigures side_figures(const std::optional<CgroupMount> &mount, const std::string &cgroup, bool v2)
{
	auto stat = read_cpu_stat(mount, cgroup);
	SideFigures side;
	side.nr_throttled = value_of(stat, "nr_throttled");
	side.throttled_ns = v2 ? value_of(stat, "throttled_usec", 1000) : value_of(stat, "throttled_time");
	if (v2)
		side.usage_ns = value_of(stat, "usage_usec", 1000);
	return side;
}

// v1: cpuacct.usage of S and O in the hierarchy that has it (cpuacct moved with the overhead, or
// co-mounted with cpu), and cpu.stat in the cpu hierarchy.
void v1_figures(const std::vector<HierarchyStatus> &hierarchies, CpuSplit &cpu)
{
	for (const auto &h : hierarchies) {
		auto mount = try_open(h.mount);
		if (std::find(h.controllers.begin(), h.controllers.end(), "cpu") != h.controllers.end()) {
			cpu.vcpu = side_figures(mount, h.vcpu.path, false);
			cpu.overhead = side_figures(mount, h.overhead.path, false);
		}
	}
	for (const auto &h : hierarchies) {
		auto mount = try_open(h.mount);
		std::error_code vcpu_ec, overhead_ec;
		auto vcpu = mount ? to_number<std::uint64_t>(
					    mount->read_value(h.vcpu.path, "cpuacct.usage", vcpu_ec))
				  : std::nullopt;
		auto overhead = mount ? to_number<std::uint64_t>(mount->read_value(
						h.overhead.path, "cpuacct.usage", overhead_ec))
				      : std::nullopt;
		if (vcpu && overhead) {
			cpu.source = "cpuacct";
			cpu.vcpu.usage_ns = vcpu;
			cpu.overhead.usage_ns = overhead;
			return;
		}
	}
}

// From the threads: the vCPU threads' utime + stime, and the rest of the process (exited threads
// included: the process's own stat line counts them).
void thread_figures(const ProcFs &proc, pid_t vmm, const std::vector<ThreadStatus> &threads, CpuSplit &cpu)
{
	std::uint64_t vcpu = 0;
	for (const auto &thread : threads)
		if (thread.side == Side::vcpu)
			vcpu += thread.cpu_ns;
	std::error_code ec;
	std::uint64_t total = cpu_ns_of(proc.read(vmm, "stat", ec));
	cpu.source = "threads";
	cpu.vcpu.usage_ns = vcpu;
	cpu.overhead.usage_ns = total > vcpu ? total - vcpu : 0;
}

CpuSplit cpu_split(const ContainerStatus &status, const ProcFs &proc)
{
	CpuSplit cpu;
	const auto &hs = status.hierarchies;
	if (status.layout == "v2" && !hs.empty()) {
		auto mount = try_open(hs[0].mount);
		cpu.vcpu = side_figures(mount, hs[0].vcpu.path, true);
		cpu.overhead = side_figures(mount, hs[0].overhead.path, true);
		cpu.source = "cpu.stat";
	} else if (status.layout == "v1") {
		v1_figures(hs, cpu);
	} else if (!hs.empty()) { // sandbox-only: S holds both sides; its throttling is the vCPU side's
		cpu.vcpu = side_figures(try_open(hs[0].mount), hs[0].sandbox.path, hs[0].key.empty());
		cpu.vcpu.usage_ns.reset();
	}
	bool alive = status.vmm && status.vmm->process.alive;
	if (alive && (!cpu.vcpu.usage_ns || !cpu.overhead.usage_ns))
		thread_figures(proc, status.vmm->process.pid, status.threads, cpu);
	return cpu;
}

// ---- problems

void cgroup_problems(ContainerStatus &status)
{
	if (status.layout == "none")
		return;
	for (const auto &h : status.hierarchies) {
		std::vector<const CgroupRef *> refs = {&h.sandbox, &h.overhead};
		if (status.layout == "v2")
			refs.push_back(&h.vcpu);
		for (const CgroupRef *ref : refs)
			if (!ref->exists)
				status.problems.push_back(h.mount + ref->path + " is missing");
	}
}

void add_problems(ContainerStatus &status)
{
	if (status.phase == "creating")
		status.problems.push_back("phase creating: createRuntime did not finish");
	if (status.container && !status.container->alive)
		status.problems.push_back(
			"the container's process is gone and poststop did not run (gc removes it)");
	cgroup_problems(status);
	if (!status.vmm)
		status.problems.push_back("no VMM found");
	else if (!status.vmm->process.alive)
		status.problems.push_back("the VMM (pid " + std::to_string(status.vmm->process.pid) +
					  ") is gone");
	bool any_vcpu = std::any_of(status.threads.begin(), status.threads.end(),
				    [](const ThreadStatus &t) { return t.side == Side::vcpu; });
	if (status.mode == "split" && status.vmm && status.vmm->process.alive && !any_vcpu)
		status.problems.push_back(
			"no vCPU thread proven (names and vcpu_proof): nothing can be placed");
}

} // namespace

const char *layout_name(const CgroupLayout &layout)
{
	if (std::holds_alternative<cgroup_v1::Layout>(layout))
		return "v1";
	if (std::holds_alternative<cgroup_v2::Layout>(layout))
		return "v2";
	return "none";
}

std::vector<HierarchyStatus> hierarchies_of(const Record &record, const ProcFs &proc,
					    std::optional<pid_t> member)
{
	std::vector<HierarchyStatus> out;
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups))
		for (const auto &h : v1->hierarchies)
			out.push_back(v1_hierarchy(h));
	else if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups))
		out.push_back(v2_hierarchy(*v2));
	else if (member)
		if (auto sandbox = sandbox_hierarchy(record, proc, *member))
			out.push_back(*sandbox);
	return out;
}

std::vector<ThreadStatus> inspect_threads(const ProcFs &proc, pid_t vmm, const Record &record,
					  const Config &config,
					  const std::vector<HierarchyStatus> &hierarchies)
{
	std::error_code ec;
	std::vector<ThreadInfo> threads =
		list_threads(proc, vmm, config.vcpu_thread_patterns, ec, config.max_vmm_threads);
	mark_recorded(threads, record);
	std::optional<KvmFds> fds;
	if (config.vcpu_proof == VcpuProof::kvm)
		prove_vcpus(proc, vmm, threads, fds);
	std::vector<ThreadStatus> out;
	for (const auto &thread : threads) {
		std::error_code stat_ec;
		out.push_back({thread.tid, thread.name, thread.vcpu ? Side::vcpu : Side::overhead,
			       thread_cgroups(proc, vmm, thread.tid, hierarchies),
			       cpu_ns_of(proc.read_task(vmm, thread.tid, "stat", stat_ec))});
	}
	return out;
}

ContainerStatus inspect(const Record &record, const std::string &record_path, const Config &config,
			const ProcFs &proc)
{
	ContainerStatus status;
	status.id = record.id;
	status.name = record.name;
	status.bundle = record.bundle;
	status.record_path = record_path;
	status.phase = record.phase == Record::Phase::creating ? "creating" : "created";
	status.mode = std::string(to_string(record.mode));
	status.host = std::string(to_string(record.host));
	status.layout = layout_name(record.cgroups);
	if (record.container)
		status.container = process_status(proc, *record.container);
	if (record.settler)
		status.settler = process_status(proc, *record.settler);
	if (record.watcher)
		status.watcher = process_status(proc, *record.watcher);
	status.vmm = current_vmm(record, config, proc);
	status.vcpu_source = record.vcpu_source;
	bool vmm_alive = status.vmm && status.vmm->process.alive;
	std::optional<pid_t> member = status.container && status.container->alive
					      ? std::optional(status.container->pid)
				      : vmm_alive ? std::optional(status.vmm->process.pid)
						  : std::nullopt;
	status.hierarchies = hierarchies_of(record, proc, member);
	if (vmm_alive)
		status.threads =
			inspect_threads(proc, status.vmm->process.pid, record, config, status.hierarchies);
	status.cpu = cpu_split(status, proc);
	add_problems(status);
	return status;
}

StatusReport inspect_all(const std::vector<LoadedRecord> &records, const Config &config, const ProcFs &proc)
{
	StatusReport report;
	for (const auto &loaded : records) {
		if (loaded.record)
			report.containers.push_back(inspect(*loaded.record, loaded.path, config, proc));
		else
			report.unreadable.push_back({loaded.name, loaded.path, loaded.error});
	}
	return report;
}

std::map<std::string, std::uint64_t, std::less<>> parse_cpu_stat(std::string_view text)
{
	std::map<std::string, std::uint64_t, std::less<>> out;
	for (std::string_view line : lines(text)) {
		std::size_t space = line.find(' ');
		if (space == std::string_view::npos)
			continue;
		if (auto value = to_number<std::uint64_t>(trim_end(line.substr(space + 1))))
			out.emplace(std::string(line.substr(0, space)), *value);
	}
	return out;
}

std::optional<std::uint64_t> parse_cpu_ticks(std::string_view stat_line)
{
	std::size_t close = stat_line.rfind(')');
	if (close == std::string_view::npos)
		return std::nullopt;
	// After "pid (comm)": field 3 is the first word, so utime (14) and stime (15) are words 12 and 13.
	std::vector<std::string_view> words;
	for (auto word : split(trim_end(stat_line.substr(close + 1)), ' '))
		if (!word.empty())
			words.push_back(word);
	if (words.size() < 13)
		return std::nullopt;
	auto utime = to_number<std::uint64_t>(words[11]);
	auto stime = to_number<std::uint64_t>(words[12]);
	if (!utime || !stime)
		return std::nullopt;
	return *utime + *stime;
}

} // namespace vmmcg::ctl
