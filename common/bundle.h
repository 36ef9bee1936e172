// What the hooks need from the bundle's config.json: the cgroups path (to cross-check and report), the
// annotations, the program and whether the container has a pid namespace. linux.resources is not read:
// the limits in effect are read from the cgroups themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmmcg {

struct CgroupsPath {
	enum class Kind {
		none,     // absent or empty: the runtime picks a path
		absolute, // "/a/b": below the root of every hierarchy
		relative, // "a/b": below the runtime's own cgroup (runc) or the root (crun)
		systemd,  // "slice:prefix:name" (systemd cgroup driver)
	};
	Kind kind = Kind::none;
	std::string path;                // absolute and relative: the path as given
	std::string slice, prefix, name; // systemd
};

struct BundleConfig {
	CgroupsPath cgroups_path;
	std::map<std::string, std::string> annotations;
	std::string program;           // process.args[0]: what the container's process will run ("" if none)
	std::vector<std::string> args; // process.args, all of them (a launcher's command line)
	// The container has no pid namespace of its own: linux.namespaces lists none (it shares its engine's,
	// the host's), or one joined by path (a pod's with shareProcessNamespace, podman --pid container:X).
	// Its init's exit then ends nothing else, so runc before 1.2 (destroy, kill --all) and containerd's
	// shim (ShouldKillAllOnExit) kill it by signalling every process of its cgroups, reading
	// cgroup.procs of each child.
	bool shared_pid = false;
};

// config.json may carry large process and mount lists; beyond this it is refused.
inline constexpr std::size_t max_bundle_config_size = 16 << 20;

// Parses the cgroupsPath forms of runtime-spec config-linux. Throws InputError for a path that could climb.
CgroupsPath parse_cgroups_path(std::string_view text);

// Parses config.json text. Throws InputError naming the field.
BundleConfig parse_bundle_config(std::string_view json);

// Reads and parses <bundle>/config.json. Throws InputError when it is missing, unreadable or invalid.
BundleConfig read_bundle_config(const std::string &bundle_dir);

} // namespace vmmcg
