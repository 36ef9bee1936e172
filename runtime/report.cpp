#include "report.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "unique_fd.h"

namespace vmmcg::runtime {

namespace {

constexpr std::string_view program = "vmm-cgroup-runtime";

std::string now_rfc3339()
{
	std::time_t t = std::time(nullptr);
	std::tm tm{};
	char buf[32];
	if (!::gmtime_r(&t, &tm) || std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "";
	return buf;
}

void write_line(int fd, const std::string &line)
{
	// One write: the line either lands whole or not at all, next to the runtime's own lines.
	ssize_t n;
	do
		n = ::write(fd, line.data(), line.size());
	while (n < 0 && errno == EINTR);
}

// The log file of --log: a path, or crun's "file:PATH"; crun's journald and syslog targets are left alone.
std::string log_file(const std::string &log)
{
	std::string path = log.starts_with("file:") ? log.substr(5) : log;
	return path.starts_with('/') ? path : std::string();
}

} // namespace

std::string log_line(std::string_view format, std::string_view message, std::string_view time,
		     std::string_view level)
{
	if (format == "json") {
		nlohmann::ordered_json line = {{"level", level}, {"msg", message}, {"time", time}};
		return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
	}
	nlohmann::json quoted = std::string(message);
	return "time=\"" + std::string(time) + "\" level=" + std::string(level) +
	       " msg=" + quoted.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

namespace {

void report(const Invocation &invocation, std::string_view level, std::string_view message)
{
	std::string text = std::string(program) + ": " + std::string(message);
	write_line(STDERR_FILENO, text + "\n");
	if (!invocation.log_path)
		return;
	std::string path = log_file(*invocation.log_path);
	if (path.empty())
		return;
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600));
	if (fd.valid())
		write_line(fd.get(), log_line(invocation.log_format, text, now_rfc3339(), level));
}

} // namespace

void report_error(const Invocation &invocation, std::string_view message)
{
	report(invocation, "error", message);
}

void report_warning(const Invocation &invocation, std::string_view message)
{
	report(invocation, "warning", message);
}

} // namespace vmmcg::runtime
