// How the wrapper reports the one error that stops it: a line on stderr and, when the runtime was given
// --log, a line in that log in the runtime's format, where the shim looks for the reason of a failed create.
#pragma once

#include <string>
#include <string_view>

#include "invocation.h"

namespace vmmcg::runtime {

// The log line as runc writes it: --log-format json gives {"level":"error","msg":...,"time":...}, text
// gives "time=... level=error msg=...". time is RFC 3339 (UTC); level as logrus names it (error,
// warning).
std::string log_line(std::string_view format, std::string_view message, std::string_view time,
		     std::string_view level = "error");

// Writes "vmm-cgroup-runtime: <message>" to stderr and, for an absolute --log path (crun's "file:" prefix
// taken off), appends log_line to it. Never throws.
void report_error(const Invocation &invocation, std::string_view message);
// The same at level warning: something the wrapper worked around, the command goes on.
void report_warning(const Invocation &invocation, std::string_view message);

} // namespace vmmcg::runtime
