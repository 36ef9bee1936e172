#include "log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cstring>
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

// The journal's native protocol (systemd's "Native Journal Protocol": KEY=value lines in one datagram
// to /run/systemd/journal/socket), so that the lines carry fields journalctl filters on:
// `journalctl -t vmm-cgroup-hooks CONTAINER_ID=<id> VMMCG_STAGE=poststart`. Written here rather than
// through libsystemd's sd_journal_send because the hooks are static executables (docs/design.md): the
// protocol is a stable, documented datagram, and values never hold a newline (sanitize_log_message).
class Journal
{
public:
	Journal()
	{
		if (::access(socket_path, W_OK) == 0)
			fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
	~Journal()
	{
		if (fd_ >= 0)
			::close(fd_);
	}
	Journal(const Journal &) = delete;
	Journal &operator=(const Journal &) = delete;

	// False when there is no journal or it refused the datagram: the caller falls back to syslog.
	bool send(int priority, const std::string &stage, const std::string &id,
		  const std::string &message) const
	{
		if (fd_ < 0)
			return false;
		std::string datagram = "MESSAGE=" + stage + " id=" + id + ": " + message +
				       "\nPRIORITY=" + std::to_string(priority) +
				       "\nSYSLOG_IDENTIFIER=" + log_identifier +
				       "\nSYSLOG_FACILITY=3\nSYSLOG_PID=" + std::to_string(::getpid()) +
				       "\nVMMCG_STAGE=" + stage + "\nCONTAINER_ID=" + id + "\n";
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::memcpy(addr.sun_path, socket_path, std::strlen(socket_path) + 1);
		return ::sendto(fd_, datagram.data(), datagram.size(), MSG_NOSIGNAL,
				reinterpret_cast<const struct sockaddr *>(&addr), sizeof(addr)) >= 0;
	}

private:
	static constexpr const char *socket_path = "/run/systemd/journal/socket";
	int fd_ = -1;
};

// One sink for the system log (the journal, or syslog) and stderr, whose stage, id and switches change in
// place.
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
		int priority = syslog_priority(msg.level);
		if (to_syslog && !journal_.send(priority, stage, id, text))
			::syslog(LOG_DAEMON | priority, "%s id=%s: %s", stage.c_str(), id.c_str(),
				 text.c_str());
		if (to_stderr) {
			auto level = spdlog::level::to_string_view(msg.level);
			std::string line = std::string(log_identifier) + " " + stage + " id=" + id + ": " +
					   std::string(level.data(), level.size()) + ": " + text + "\n";
			(void)!::write(STDERR_FILENO, line.data(), line.size());
		}
	}
	void flush_() override {}

private:
	Journal journal_;
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
