// Where each cgroup of a container is and where its threads belong, one typed layout per cgroup version:
// computed from values only, no I/O, so every mode and host is testable.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config.h"
#include "host.h"

namespace vmmcg {

namespace cgroup_v1 {

// One hierarchy that holds overhead controllers (v1 and hybrid hosts). Paths are cgroup paths, relative
// to the mount ("/a/b").
struct Hierarchy {
	std::string mount;                    // "/sys/fs/cgroup/cpu,cpuacct"
	std::vector<std::string> controllers; // the overhead controllers mounted there: {"cpu", "cpuacct"}
	std::string proc_key;                 // this hierarchy's key in parse_proc_cgroup()'s map
	std::string sandbox;                  // S: the vCPU threads stay here
	std::string overhead;                 // O: the VMM process and its other threads
	// Where O's cpuset.cpus and cpuset.mems are copied from: S (beside S: the container's own CPUs), or
	// O's parent (below the overhead root: the CPUs the node owner gave it).
	std::string cpuset_source;
	// The overhead root and its ancestors, parents first: made when missing, never removed (other
	// containers live below them), never changed when they exist. Empty beside S.
	std::vector<std::string> shared;

	bool has(std::string_view controller) const;
};

struct Layout {
	std::vector<Hierarchy> hierarchies;
};

} // namespace cgroup_v1

namespace cgroup_v2 {

// S becomes a threaded root with two threaded children (v2 hosts): a thread can only leave its process's
// cgroup inside one threaded subtree, so O cannot live outside S.
struct Layout {
	std::string mount;
	std::string sandbox; // S

	std::string vcpu() const;     // S/vcpu: the container's CPU limits, the vCPU threads
	std::string overhead() const; // S/overhead: every other thread of the VMM

	// What createRuntime and poststart changed on S, for poststop to undo.
	std::vector<std::string> enabled;         // controllers enabled in S's cgroup.subtree_control
	std::map<std::string, std::string> saved; // S's own values before the split ("cpu.max")
	bool relaxed = false;                     // S's cpu.max was lifted once the vCPUs were placed
};

} // namespace cgroup_v2

// The cgroups of a container in split mode, per version; monostate in sandbox-only mode (nothing is
// created or moved).
using CgroupLayout = std::variant<std::monostate, cgroup_v1::Layout, cgroup_v2::Layout>;

// The name of one container instance: "<id>-<16 hex digits of a hash of its bundle path>". Two
// containers with one id (across runtime roots or containerd namespaces) have different bundles, so
// their records and overhead cgroups never meet. Every stage has the bundle, poststop included.
std::string instance_name(std::string_view id, std::string_view bundle);
// `name` is an instance_name() of container `id` (of some bundle).
bool is_instance_of(std::string_view name, std::string_view id);

struct LayoutInput {
	HostMode host = HostMode::v1;
	Mode mode = Mode::split;
	std::string instance; // instance_name()
	OverheadParent overhead_parent = OverheadParent::sandbox;
	std::string overhead_root;
	std::vector<std::string> overhead_controllers;
	Mounts mounts;
	ProcCgroups sandbox; // /proc/<container pid>/cgroup
};

// Split mode:
//  - v1/hybrid: in each hierarchy holding an overhead controller, O = <parent of S>/vmm-overhead-<instance>
//    or <overhead_root>/<instance>. Hybrid hosts
//    use the v1 hierarchies: the unified mount holds no controller there and is left alone.
//  - v2: S/vcpu and S/overhead, threaded children of S.
// Throws InputError when a controller is not mounted or the container is in no cgroup of a hierarchy.
CgroupLayout compute_layout(const LayoutInput &input);

} // namespace vmmcg
