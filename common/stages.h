// The three stages, each reading like the lifecycle it serves: createRuntime plans and creates the
// cgroups, poststart places the VMM's threads (or hands over to the settler), poststop removes what the
// project created. The driver (hook.cpp) gives them a parsed state and configuration.
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "state.h"

namespace vmmcg {

struct StageContext {
	State state;
	Config config;
	// The hook was added by the node owner's runtime wrapper (--gate=runtime), not matched by an
	// annotation: the container is enabled whatever its annotations say.
	bool runtime_gate = false;
	// The --config the hook was given (none: the default), for the settler it starts.
	std::optional<std::string> config_path;
};

int create_runtime(StageContext context);
int poststart(StageContext context);
int poststop(const StageContext &context);

} // namespace vmmcg
