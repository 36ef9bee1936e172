// The wrapper's configuration, runtime.json: which runtime it runs and what the hooks it adds are given.
// The node owner writes it; an engine passes no arguments to a handler's binary (containerd's BinaryName,
// CRI-O's runtime_path), so the file is the only channel.
#pragma once

#include "hook.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec_hooks.h"

namespace vmmcg::runtime {

struct WrapperConfig {
	std::optional<std::string> runtime; // absent: the first of default_runtimes that is executable
	std::string hook_dir;               // where vmm-cgroup-{create-runtime,poststart,poststop} are
	std::optional<std::string> hook_config;
	int hook_timeout_s = static_cast<int>(hook_file_timeout_seconds);
};

// In this order, as Debian and most distributions install them.
const std::vector<std::string> &default_runtimes();

// Parses runtime.json over defaults. Keys: runtime, hook_dir, hook_config (absolute paths), hook_timeout_s
// (1..300). Throws InputError naming the field; an unknown key is an error.
WrapperConfig parse_wrapper_config(std::string_view text, WrapperConfig defaults);

// runtime.json for one command. read() gives the file's text, or std::nullopt when there is none (the
// defaults); it and the parse may throw. For create and run the exception goes on: a container is not
// started without the hooks the node owner configured. Every other command (kill, delete, state, ...) gets
// the defaults instead, and `problem` says why: a broken file must not leave the handler's containers
// impossible to stop.
struct LoadedConfig {
	WrapperConfig config;
	std::optional<std::string> problem;
};
LoadedConfig wrapper_config_for(std::string_view command,
				const std::function<std::optional<std::string>()> &read,
				WrapperConfig defaults);

// The runtime to exec: the configured one, else the first default for which executable(path) holds.
// Throws InputError when none is found.
std::string choose_runtime(const WrapperConfig &config,
			   const std::function<bool(const std::string &)> &executable);

HookSettings hook_settings(const WrapperConfig &config);

} // namespace vmmcg::runtime
