// Logging: one line per event to syslog (crun throws hook output away) and to stderr (runc puts a hook's
// stderr into the error it reports), each line carrying the stage and the container id. The logger is
// installed once per run; what the configuration says is applied to it afterwards, never by a second
// install (a second syslog sink would closelog() and lose the identifier).
#pragma once

#include <string>
#include <string_view>

#include "config.h"

namespace vmmcg {

// The syslog identifier (and journal SYSLOG_IDENTIFIER) of every line of every executable.
inline constexpr const char *log_identifier = "vmm-cgroup-hooks";
// The longest message logged; longer ones are cut, so a value from a container cannot flood the log.
inline constexpr std::size_t max_log_line = 2048;

// Installs the default logger for a stage (level info, syslog and stderr). Before the id is known the
// lines say "id=?".
void setup_logging(std::string_view stage);
// The configuration's level and sinks.
void apply_log_options(const LogOptions &options);
// Once the state is parsed: every later line names the container.
void set_log_container(std::string_view id);
// The settler has no stderr: from then on it logs to syslog only.
void drop_stderr_logging();

// The line as a sink writes it: control characters as \xHH (a newline in a value forges no line), cut to
// max_log_line bytes with "...".
std::string sanitize_log_message(std::string_view message);

} // namespace vmmcg
