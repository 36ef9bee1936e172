#include "log.h"

#include <syslog.h>

#include <memory>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>

namespace vmmcg {

namespace {

std::string current_stage;
std::string current_id = "?";
LogOptions current_options;

void install(const std::string &id, bool with_stderr)
{
	std::vector<spdlog::sink_ptr> sinks;
	if (current_options.syslog) {
		auto sink = std::make_shared<spdlog::sinks::syslog_sink_st>("vmm-cgroup-hooks", LOG_PID,
									    LOG_DAEMON, true);
		sink->set_pattern(current_stage + " id=" + id + ": %v");
		sinks.push_back(sink);
	}
	if (with_stderr && current_options.stderr_sink) {
		auto sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
		sink->set_pattern("vmm-cgroup-hooks " + current_stage + " id=" + id + ": %l: %v");
		sinks.push_back(sink);
	}
	auto logger = std::make_shared<spdlog::logger>("vmm-cgroup-hooks", sinks.begin(), sinks.end());
	logger->set_level(spdlog::level::from_str(current_options.level));
	logger->flush_on(spdlog::level::trace);
	spdlog::set_default_logger(logger);
}

} // namespace

void setup_logging(const std::string &stage, const LogOptions &options)
{
	current_stage = stage;
	current_options = options;
	install(current_id, true);
}

void set_log_container(const std::string &id)
{
	current_id = id;
	install(current_id, true);
}

void drop_stderr_logging()
{
	install(current_id, false);
}

} // namespace vmmcg
