// The OCI state a runtime writes to a hook's standard input (runtime-spec "State").
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace vmmcg {

struct State {
	std::string oci_version;
	std::string id;
	std::string status;
	// 0 when absent (podman runs poststop itself, without one) or given as 0 (crun's poststop).
	pid_t pid = 0;
	std::string bundle;
	std::map<std::string, std::string> annotations;
};

// The most a hook reads from standard input: a state is a few hundred bytes plus the annotations.
inline constexpr std::size_t max_state_size = 1 << 20;

// Parses and validates a state document. Throws InputError naming the field.
State parse_state(std::string_view json);

} // namespace vmmcg
