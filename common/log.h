// Logging: one line per event to syslog (crun throws hook output away) and to stderr (runc puts a hook's
// stderr into the error it reports), each line carrying the stage and the container id.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace vmmcg {

struct LogOptions {
	std::string level = "info";
	bool syslog = true;
	bool stderr_sink = true;
};

// Installs the default logger for a stage; before the id is known the lines say "id=?".
void setup_logging(const std::string &stage, const LogOptions &options);
// Once the state is parsed: every later line names the container.
void set_log_container(const std::string &id);
// The settler has no stderr: from then on it logs to syslog only.
void drop_stderr_logging();

} // namespace vmmcg
