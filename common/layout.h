// Where each cgroup of a container is and where its threads belong: computed from values only, no I/O, so
// every mode and host is testable.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "host.h"

namespace vmmcg {

// A cgroup the layout needs. `shared` ones (the overhead root) are created when missing and never removed:
// other containers live below them. `threaded` ones get cgroup.type "threaded" right after mkdir.
struct CgroupDir {
	std::string path;
	bool shared = false;
	bool threaded = false;
};

// One hierarchy the layout acts in. Paths are cgroup paths, relative to the mount ("/a/b").
struct Target {
	std::string mount;
	std::string controllers; // for messages: "cpu", "cpu,cpuacct" or "unified"
	bool v2 = false;
	std::string sandbox;           // S: where the runtime put the container
	std::string vcpu;              // where vCPU threads go
	std::string overhead;          // where every other thread of the VMM goes
	std::vector<CgroupDir> create; // parents first
};

struct Layout {
	HostMode host = HostMode::v1;
	Mode mode = Mode::split;
	std::vector<Target> targets; // empty in sandbox-only mode: nothing is created or moved
};

struct LayoutInput {
	HostMode host = HostMode::v1;
	Mode mode = Mode::split;
	std::string id;
	std::string overhead_root;
	std::vector<std::string> overhead_controllers;
	Mounts mounts;
	ProcCgroups sandbox; // /proc/<container pid>/cgroup; may be empty to compute only what to remove
};

// Split mode:
//  - v1/hybrid: in each hierarchy holding an overhead controller, O = <overhead_root>/<id>; the VMM process
//    goes to O, its vCPU threads back to S. Every other hierarchy is left alone.
//  - v2: S/vcpu and S/overhead, threaded children of S.
// Throws InputError when a controller is not mounted or the container is in no cgroup of a hierarchy.
Layout compute_layout(const LayoutInput &input);

} // namespace vmmcg
