// vmm-cgroup-install: registers the product with one container engine on a host root, and undoes it.
// Each engine's step reads the files it needs, checks them, and returns a plan (the files to write or
// remove, and what to tell the node owner); apply() carries it out, with the backups. Nothing is written
// before every check has passed, so a refusal leaves the host as it was.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "host_files.h"

namespace vmmcg::install {

enum class Engine { containerd, crio, podman };
enum class Action { install, uninstall };

struct Settings {
	Engine engine = Engine::containerd;
	Action action = Action::install;
	std::string handler = "vmm";
	// Where the product is on the host (host paths).
	std::string hook_dir;               // the hooks and the wrapper: <prefix>/libexec/vmm-cgroup-hooks
	std::string wrapper;                // <hook_dir>/vmm-cgroup-runtime
	std::string hooks_d;                // the oci-hooks.d files: <prefix>/share/containers/oci/hooks.d
	std::optional<std::string> runtime; // the real runtime the wrapper execs (runtime.json)
	std::optional<std::string> hook_config; // the hooks' --config (runtime.json)
	// The engine's main configuration file (host path); empty: the engine's default.
	std::string engine_config;
};

// The compiled-in places (the meson prefix): the defaults of Settings and what runtime.json leaves out.
struct Defaults {
	std::string hook_dir;
	std::string hooks_d;
	std::string runtime_json; // the wrapper's configuration file
	std::string hooks_config; // the hooks' default configuration file
};

struct Change {
	std::string path;                // host path
	std::optional<std::string> text; // nullopt: remove the file
	bool backup = false;             // keep <path>.vmmcg-backup of the original (first install only)
	std::string what;                // one line for the node owner
};

struct Plan {
	std::vector<Change> changes;
	std::vector<std::string> notes;      // said after the changes
	std::vector<std::string> dirs_to_rm; // removed when empty, after the changes (host paths)
};

inline constexpr const char *backup_suffix = ".vmmcg-backup";

// Default main configuration per engine.
std::string default_engine_config(Engine engine);
// The drop-in files of each engine (containerd 2.x conf.d, crio.conf.d, containers.conf.d).
std::string containerd_dropin(const std::string &main_config);
std::string crio_dropin(const std::string &main_config);
std::string podman_dropin(const std::string &main_config);

// Throws InputError (bad input or a configuration that is left alone), std::system_error.
Plan plan(const HostRoot &root, const Settings &settings, const Defaults &defaults);

// Writes and removes as planned: a backup before the first change of a file that has `backup`, the
// changes, then the empty directories. Returns one line per change, and the notes.
std::vector<std::string> apply(const HostRoot &root, const Plan &plan);

// A RuntimeClass handler: a DNS-1123 label (what Kubernetes accepts for `handler`).
bool valid_handler(const std::string &name);

} // namespace vmmcg::install
