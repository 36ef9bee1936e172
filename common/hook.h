// The hook driver: each executable in hooks/ is `return run_hook(Stage::..., argc, argv);`.
#pragma once

namespace vmmcg {

enum class Stage { create_runtime, poststart, poststop };

// Exit codes: 0 done (or nothing to do), 1 the host refused something or something could not be cleaned,
// 2 bad input (state, config.json, configuration, annotations, arguments).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_input = 2;

// The wall-clock bound of every stage, kept by alarm(2) whatever the input (passes, QMP, removal retries
// and the settler's hand-over each have bounds well inside it). The hook files' timeout is
// hook_file_timeout_seconds, so the runtime never waits on a hook that hangs.
inline constexpr unsigned stage_bound_seconds = 20;
inline constexpr unsigned hook_file_timeout_seconds = 30;

// Parses the arguments (--config PATH, --help, --version), reads the OCI state from standard input and
// runs the stage. Never throws.
int run_hook(Stage stage, int argc, char **argv);

} // namespace vmmcg
