// What `vmm-cgroupctl status` knows of one managed container: read from its record, the cgroupfs and /proc
// (inspect.h), then shown as a tree, JSON or Prometheus text (format.h). Plain values: the formatting and the
// placement rule are pure, so the unit tests build these by hand.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vmmcg::ctl {

// The side of the layout a thread belongs to: the vCPU side (under the container's CPU limits: S on v1,
// S/vcpu on v2) or the overhead side (O on v1, S/overhead on v2).
enum class Side { vcpu, overhead };

// Where a thread is now, in the terms of the layout.
enum class Location {
	vcpu,      // the vCPU side's cgroup
	overhead,  // the overhead side's cgroup
	sandbox,   // S itself where S is neither side (v2: not yet sorted into a child)
	elsewhere, // none of this container's cgroups
	mixed,     // different places in different hierarchies (v1)
};

struct CgroupRef {
	std::string path;
	bool exists = false;
};

// One hierarchy the layout acts in (v1: one per overhead hierarchy; v2: the cgroup2 mount). In
// sandbox-only mode one hierarchy whose sides are both S.
struct HierarchyStatus {
	std::string key; // the hierarchy's key in /proc/<pid>/cgroup: "cpu", or "" for cgroup2
	std::string mount;
	std::vector<std::string> controllers;
	CgroupRef sandbox;  // S
	CgroupRef vcpu;     // v1: S; v2: S/vcpu
	CgroupRef overhead; // v1: O; v2: S/overhead
};

struct ProcessStatus {
	pid_t pid = 0;
	std::uint64_t start_time = 0;
	bool alive = false;
};

struct VmmStatus {
	ProcessStatus process;
	std::string name; // comm
	// The record names it (poststart placed it), or it was found from the container.
	bool recorded = false;
};

struct ThreadStatus {
	pid_t tid = 0;
	std::string name;
	Side side = Side::overhead;
	std::map<std::string, std::string> cgroups; // hierarchy key -> where the thread is now
	std::uint64_t cpu_ns = 0;                   // utime + stime
};

// The CPU figures of one side, each absent where the host does not say.
struct SideFigures {
	std::optional<std::uint64_t> usage_ns;
	std::optional<std::uint64_t> nr_throttled;
	std::optional<std::uint64_t> throttled_ns;
};

struct CpuSplit {
	// Where usage comes from: "cpuacct" (v1 cpuacct.usage of S and O), "cpu.stat" (v2 usage_usec of the
	// children), or "threads" (utime + stime from /proc: the vCPU threads, and the rest of the process).
	std::string source;
	SideFigures vcpu;
	SideFigures overhead;
};

struct ContainerStatus {
	std::string id;
	std::string name; // the instance name: the record's file name
	std::string bundle;
	std::string record_path;
	std::string phase;  // "creating" or "created"
	std::string mode;   // "split" or "sandbox-only"
	std::string host;   // "v1", "hybrid" or "v2"
	std::string layout; // "v1", "v2" or "none" (sandbox-only)
	std::optional<ProcessStatus> container;
	std::optional<ProcessStatus> settler; // placing still
	std::optional<ProcessStatus> watcher; // placed: placing the VMM's new threads for as long as it runs
	std::vector<HierarchyStatus> hierarchies;
	std::optional<VmmStatus> vmm;
	std::string vcpu_source;
	std::vector<ThreadStatus> threads;
	CpuSplit cpu;
	std::vector<std::string> problems; // what the checks found, one line each
};

// A record file that could not be read (malformed, or not the record of its name).
struct Unreadable {
	std::string name;
	std::string path;
	std::string error;
};

struct StatusReport {
	std::vector<ContainerStatus> containers;
	std::vector<Unreadable> unreadable;
};

// Where a thread is in one hierarchy, and in all of them.
Location locate(const HierarchyStatus &hierarchy, const std::string &path);
Location locate(const ContainerStatus &status, const ThreadStatus &thread);
// The thread is on its side in every hierarchy.
bool placed(const ContainerStatus &status, const ThreadStatus &thread);
// A created container whose VMM is alive, with every thread placed and nothing found wrong.
bool placement_ok(const ContainerStatus &status);

const char *to_string(Side side);
const char *to_string(Location location);

} // namespace vmmcg::ctl
