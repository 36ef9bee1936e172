// The host's cgroup setup: v1, hybrid or v2, where each hierarchy is mounted, and where a process is.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace vmmcg {

enum class HostMode { v1, hybrid, v2 };

std::string_view to_string(HostMode mode);
std::optional<HostMode> parse_host_mode(std::string_view text);

// As crun, runc and systemd decide it: statfs(root) is cgroup2 -> v2; tmpfs with a cgroup2 file system at
// root/unified -> hybrid; otherwise v1. (libcgroup 2.0.2 has no cgroup_setup_mode() to ask.)
HostMode detect_host_mode(const std::string &root = "/sys/fs/cgroup");

struct Mounts {
	// v1 controller name -> mount point ("cpu" -> "/sys/fs/cgroup/cpu"); co-mounted controllers share
	// one.
	std::map<std::string, std::string> v1;
	// The cgroup2 mount: the root on v2 hosts, root/unified on hybrid ones, empty on v1.
	std::string unified;
};

// Finds the mounts: the v1 controllers from /proc/self/mountinfo, as crun and runc find them; cgroup2 from
// the host mode. Not libcgroup's cgroup_init(): it took 0.45-0.55 ms here, half of the floor's whole
// createRuntime (README, "Performance"), and 2.0.2 gives up when a cgroup2 mount it lists is hidden, as
// crun's wrapper on hybrid hosts does. An integration test checks this against libcgroup's answer.
Mounts discover_mounts(HostMode mode, const std::string &root = "/sys/fs/cgroup");

// The v1 controller mounts listed in a /proc/<pid>/mountinfo text: controller -> mount point, for
// mounts of the hierarchy's root. Later lines win, as later mounts hide earlier ones.
std::map<std::string, std::string> parse_v1_mounts(std::string_view mountinfo);

// /proc/<pid>/cgroup as a map: each v1 controller of a line -> path ("cpu" -> "/a/b"; a named hierarchy
// keeps its "name=..." key), and the cgroup2 line under the key "" (empty). Throws InputError if malformed.
using ProcCgroups = std::map<std::string, std::string, std::less<>>;
ProcCgroups parse_proc_cgroup(std::string_view text);

} // namespace vmmcg
