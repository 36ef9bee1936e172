#include "log.h"

#include <syslog.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace vmmcg {

namespace {

int syslog_priority(spdlog::level::level_enum level)
{
	switch (level) {
	case spdlog::level::trace:
	case spdlog::level::debug:
		return LOG_DEBUG;
	case spdlog::level::info:
		return LOG_INFO;
	case spdlog::level::warn:
		return LOG_WARNING;
	case spdlog::level::err:
		return LOG_ERR;
	default:
		return LOG_CRIT;
	}
}

// One sink for both destinations, whose stage, id and switches change in place.
class HookSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex>
{
public:
	std::string stage = "?";
	std::string id = "?";
	bool to_syslog = true;
	bool to_stderr = true;

protected:
	void sink_it_(const spdlog::details::log_msg &msg) override
	{
		std::string text =
			sanitize_log_message(std::string_view(msg.payload.data(), msg.payload.size()));
		if (to_syslog)
			::syslog(LOG_DAEMON | syslog_priority(msg.level), "%s id=%s: %s", stage.c_str(),
				 id.c_str(), text.c_str());
		if (to_stderr) {
			auto level = spdlog::level::to_string_view(msg.level);
			std::string line = std::string(log_identifier) + " " + stage + " id=" + id + ": " +
					   std::string(level.data(), level.size()) + ": " + text + "\n";
			(void)!::write(STDERR_FILENO, line.data(), line.size());
		}
	}
	void flush_() override {}
};

std::shared_ptr<HookSink> sink;

} // namespace

std::string sanitize_log_message(std::string_view message)
{
	static constexpr char hex[] = "0123456789abcdef";
	std::string out;
	for (char c : message) {
		if (out.size() >= max_log_line) {
			out += "...";
			break;
		}
		auto byte = static_cast<unsigned char>(c);
		if (byte >= 0x20 && byte != 0x7f) {
			out += c;
			continue;
		}
		out.append("\\x").append(1, hex[byte >> 4]).append(1, hex[byte & 15]);
	}
	return out;
}

void setup_logging(std::string_view stage)
{
	// The identifier must outlive every syslog() call: a literal. Never closed.
	::openlog(log_identifier, LOG_PID, LOG_DAEMON);
	sink = std::make_shared<HookSink>();
	sink->stage = std::string(stage);
	auto logger = std::make_shared<spdlog::logger>(log_identifier, sink);
	logger->set_level(spdlog::level::info);
	logger->flush_on(spdlog::level::trace);
	spdlog::set_default_logger(logger);
}

void apply_log_options(const LogOptions &options)
{
	spdlog::set_level(spdlog::level::from_str(options.level));
	sink->to_syslog = options.syslog;
	sink->to_stderr = options.stderr_sink;
}

void set_log_container(std::string_view id)
{
	sink->id = std::string(id);
}

void drop_stderr_logging()
{
	sink->to_stderr = false;
}

} // namespace vmmcg
