// The hook driver: each executable in hooks/ is `return run_hook(Stage::..., argc, argv);`.
#pragma once

namespace vmmcg {

enum class Stage { create_runtime, poststart, poststop };

// Exit codes: 0 done (or nothing to do), 1 the host refused something or something could not be cleaned,
// 2 bad input (state, config.json, configuration, annotations, arguments).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_input = 2;

// Parses the arguments (--config PATH, --help, --version), reads the OCI state from standard input and
// runs the stage. Never throws.
int run_hook(Stage stage, int argc, char **argv);

} // namespace vmmcg
