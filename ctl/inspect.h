// Reads what `status` shows of one container: its record checked against the cgroupfs (cgroupfs.h) and
// /proc (procfs.h). Nothing is written.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "model.h"
#include "procfs.h"
#include "record.h"
#include "records.h"

namespace vmmcg::ctl {

// The hierarchies of a record's layout with their cgroups (and whether each exists); in sandbox-only mode
// (no layout) the container's cgroup in the cpu hierarchy (cgroup2 on v2 hosts), read from /proc of
// `member` (the container's process or its VMM).
std::vector<HierarchyStatus> hierarchies_of(const Record &record, const ProcFs &proc,
					    std::optional<pid_t> member);

// "v1", "v2" or "none".
const char *layout_name(const CgroupLayout &layout);

// The VMM the container's process runs now, as poststart finds it (recorded: the record names it); else,
// where none is found, the recorded one, alive or gone; nullopt when there is none of these.
std::optional<VmmStatus> current_vmm(const Record &record, const Config &config, const ProcFs &proc);

// The VMM's threads, each with its side (vCPU: named as one, or listed by QMP in the record, and proven
// as config.vcpu_proof says) and where it is now in each hierarchy.
std::vector<ThreadStatus> inspect_threads(const ProcFs &proc, pid_t vmm, const Record &record,
					  const Config &config,
					  const std::vector<HierarchyStatus> &hierarchies);

ContainerStatus inspect(const Record &record, const std::string &record_path, const Config &config,
			const ProcFs &proc);
StatusReport inspect_all(const std::vector<LoadedRecord> &records, const Config &config, const ProcFs &proc);

// "key value" lines of a cgroup's cpu.stat (v1 and v2).
std::map<std::string, std::uint64_t, std::less<>> parse_cpu_stat(std::string_view text);
// utime + stime (fields 14 and 15, clock ticks) of a /proc/<pid>[/task/<tid>]/stat line.
std::optional<std::uint64_t> parse_cpu_ticks(std::string_view stat_line);

} // namespace vmmcg::ctl
