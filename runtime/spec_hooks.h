// The edit of config.json the wrapper makes at create and run: the three hooks added, everything else kept
// (ordered_json keeps the keys in their order). Pure: the tests feed documents.
#pragma once

#include "hook.h"

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vmmcg::runtime {

using Spec = nlohmann::ordered_json;

// What the added hooks run: the three executables, the configuration they are given, and the hooks'
// timeout (runtime-spec `timeout`, seconds).
struct HookSettings {
	std::string create_runtime, poststart, poststop;
	std::optional<std::string> config; // passed as --config PATH
	int timeout_s = static_cast<int>(hook_file_timeout_seconds);
};

// The last argument of every hook the wrapper adds: the node owner's runtime handler enabled the hooks for
// this container, which is what they act on by default (opt_in "runtime"). The container's own
// io.vmm-cgroup-hooks.enable annotation, which its author sets, is neither set nor needed.
inline constexpr std::string_view gate_argument = "--gate=runtime";

// Parses config.json text; throws InputError("config.json: ...") when it is no JSON object.
Spec parse_spec(std::string_view text);

// True for a pod's sandbox (pause) container, which the CRI runtime marks after the pod's own annotations:
// containerd `io.kubernetes.cri.container-type`, CRI-O `io.kubernetes.cri-o.ContainerType`, "sandbox".
bool is_pod_sandbox(const Spec &spec);

// Adds the hooks (createRuntime, poststart, poststop), each with `--gate=runtime`. An entry whose path is
// one of ours is replaced in place, so a second create leaves one of each. Returns whether spec changed.
// Throws InputError when `hooks`, a stage or `annotations` has the wrong type.
bool add_hooks(Spec &spec, const HookSettings &settings);

} // namespace vmmcg::runtime
