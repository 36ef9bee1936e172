// The three stages, each reading like the lifecycle it serves: createRuntime plans and creates the
// cgroups, poststart places the VMM's threads (or hands over to the settler), poststop removes what the
// project created. The driver (hook.cpp) gives them a parsed state and configuration.
#pragma once

#include "config.h"
#include "state.h"

namespace vmmcg {

int create_runtime(const State &state, Config config);
int poststart(const State &state, Config config);
int poststop(const State &state, const Config &config);

} // namespace vmmcg
