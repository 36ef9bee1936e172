#include "qmp.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "io.h"
#include "paths.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline)
{
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return left > 0 ? static_cast<int>(left) : 0;
}

// Opens the socket path inside the VMM's root: symlinks resolve within it and ".." cannot climb out.
UniqueFd open_in_root(const ProcFs &proc, pid_t vmm, const std::string &path, std::string &why)
{
	std::string root = proc.root() + "/" + std::to_string(vmm) + "/root";
	UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!root_fd.valid()) {
		why = "opening " + root + ": " + std::strerror(errno);
		return {};
	}
	struct open_how how {};
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	long fd = ::syscall(SYS_openat2, root_fd.get(), path.c_str() + 1, &how, sizeof(how));
	if (fd < 0) {
		why = "opening " + path + " in the VMM's root: " + std::strerror(errno);
		return {};
	}
	UniqueFd socket_fd(static_cast<int>(fd));
	struct stat st {};
	if (::fstat(socket_fd.get(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
		why = path + " in the VMM's root is not a socket";
		return {};
	}
	return socket_fd;
}

// Connects through the O_PATH fd (/proc/self/fd/N), so the path is not resolved a second time.
UniqueFd connect_socket(int path_fd, Clock::time_point deadline, std::string &why)
{
	UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!sock.valid()) {
		why = std::string("socket: ") + std::strerror(errno);
		return {};
	}
	struct sockaddr_un addr {};
	addr.sun_family = AF_UNIX;
	std::string name = "/proc/self/fd/" + std::to_string(path_fd);
	std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
	if (::connect(sock.get(), reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			why = std::string("connect: ") + std::strerror(errno);
			return {};
		}
		struct pollfd pfd {
			sock.get(), POLLOUT, 0
		};
		int err = 0;
		socklen_t len = sizeof(err);
		if (::poll(&pfd, 1, remaining_ms(deadline)) != 1 ||
		    ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			why = "connect: timed out or refused";
			return {};
		}
	}
	return sock;
}

class LineReader
{
public:
	LineReader(int fd, Clock::time_point deadline, std::size_t limit)
		: fd_(fd), deadline_(deadline), limit_(limit)
	{}

	// The next line, or nullopt on timeout, EOF, error or when the peer sent more than the limit.
	std::optional<std::string> next(std::string &why)
	{
		for (;;) {
			std::size_t eol = buffer_.find('\n');
			if (eol != std::string::npos) {
				std::string line = buffer_.substr(0, eol);
				buffer_.erase(0, eol + 1);
				return line;
			}
			if (total_ > limit_) {
				why = "response larger than " + std::to_string(limit_) + " bytes";
				return std::nullopt;
			}
			struct pollfd pfd {
				fd_, POLLIN, 0
			};
			int ready = ::poll(&pfd, 1, remaining_ms(deadline_));
			if (ready <= 0) {
				why = "no answer in time";
				return std::nullopt;
			}
			char buf[4096];
			ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				why = n == 0 ? "connection closed"
					     : std::string("recv: ") + std::strerror(errno);
				return std::nullopt;
			}
			total_ += static_cast<std::size_t>(n);
			buffer_.append(buf, static_cast<std::size_t>(n));
		}
	}

private:
	int fd_;
	Clock::time_point deadline_;
	std::size_t limit_;
	std::size_t total_ = 0;
	std::string buffer_;
};

bool send_all(int fd, std::string_view text, Clock::time_point deadline)
{
	while (!text.empty()) {
		ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd {
				fd, POLLOUT, 0
			};
			if (::poll(&pfd, 1, remaining_ms(deadline)) != 1)
				return false;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		text.remove_prefix(static_cast<std::size_t>(n));
	}
	return true;
}

// Reads lines until a reply ("return" or "error"); QMP interleaves events, which are skipped.
std::optional<nlohmann::json> read_reply(LineReader &reader, std::string &why)
{
	while (auto line = reader.next(why)) {
		nlohmann::json doc = nlohmann::json::parse(*line, nullptr, false);
		if (doc.is_discarded() || !doc.is_object()) {
			why = "not QMP: a line that is not a JSON object";
			return std::nullopt;
		}
		if (doc.contains("event"))
			continue;
		if (doc.contains("error")) {
			why = "QMP error: " + doc["error"].value("desc", std::string("(no description)"));
			return std::nullopt;
		}
		if (doc.contains("return"))
			return doc;
		why = "not QMP: unexpected reply";
		return std::nullopt;
	}
	return std::nullopt;
}

// Namespace tid -> host tid for every thread of the VMM.
std::map<pid_t, pid_t> namespace_ids(const ProcFs &proc, pid_t vmm)
{
	std::map<pid_t, pid_t> ids;
	std::error_code ec;
	for (pid_t tid : proc.thread_ids(vmm, ec)) {
		std::error_code read_ec;
		std::string status = read_file(proc.root() + "/" + std::to_string(vmm) + "/task/" +
						       std::to_string(tid) + "/status",
					       64 * 1024, read_ec);
		if (auto inner = parse_innermost_nspid(status); !read_ec && inner)
			ids.emplace(*inner, tid);
	}
	return ids;
}

} // namespace

std::optional<std::vector<QmpCpu>> parse_query_cpus_fast(std::string_view line)
{
	nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
	if (doc.is_discarded() || !doc.is_object())
		return std::nullopt;
	auto it = doc.find("return");
	if (it == doc.end() || !it->is_array())
		return std::nullopt;
	std::vector<QmpCpu> cpus;
	for (const auto &entry : *it) {
		if (!entry.is_object())
			return std::nullopt;
		auto index = entry.find("cpu-index");
		auto thread = entry.find("thread-id");
		if (index == entry.end() || thread == entry.end() || !index->is_number_unsigned() ||
		    !thread->is_number_unsigned())
			return std::nullopt;
		auto tid = thread->get<std::uint64_t>();
		auto cpu = index->get<std::uint64_t>();
		if (tid == 0 || tid > INT32_MAX || cpu > INT32_MAX)
			return std::nullopt;
		cpus.push_back({static_cast<int>(cpu), static_cast<pid_t>(tid)});
	}
	return cpus;
}

std::optional<pid_t> parse_innermost_nspid(std::string_view status)
{
	std::size_t at = status.find("NSpid:");
	if (at == std::string_view::npos || (at > 0 && status[at - 1] != '\n'))
		return std::nullopt;
	std::string_view line = status.substr(at + 6);
	line = line.substr(0, line.find('\n'));
	std::size_t end = line.find_last_not_of(" \t");
	if (end == std::string_view::npos)
		return std::nullopt;
	line = line.substr(0, end + 1);
	std::size_t start = line.find_last_of(" \t");
	std::string_view last = start == std::string_view::npos ? line : line.substr(start + 1);
	pid_t id = 0;
	auto [ptr, err] = std::from_chars(last.data(), last.data() + last.size(), id);
	if (err != std::errc() || ptr != last.data() + last.size() || id <= 0)
		return std::nullopt;
	return id;
}

std::optional<std::vector<pid_t>> query_vcpu_threads(const ProcFs &proc, pid_t vmm,
						     const std::string &socket_path, const QmpLimits &limits,
						     std::string &why)
{
	if (!is_clean_absolute(socket_path) || socket_path == "/") {
		why = "socket path '" + socket_path + "' is not a clean absolute path";
		return std::nullopt;
	}
	auto deadline = Clock::now() + limits.total;
	UniqueFd path_fd = open_in_root(proc, vmm, socket_path, why);
	if (!path_fd.valid())
		return std::nullopt;
	UniqueFd sock = connect_socket(path_fd.get(), deadline, why);
	if (!sock.valid())
		return std::nullopt;

	LineReader reader(sock.get(), deadline, limits.max_response);
	auto greeting = reader.next(why);
	if (!greeting)
		return std::nullopt;
	nlohmann::json hello = nlohmann::json::parse(*greeting, nullptr, false);
	if (hello.is_discarded() || !hello.is_object() || !hello.contains("QMP")) {
		why = "not QMP: no greeting";
		return std::nullopt;
	}
	if (!send_all(sock.get(), "{\"execute\":\"qmp_capabilities\"}\n", deadline)) {
		why = "sending qmp_capabilities failed";
		return std::nullopt;
	}
	if (!read_reply(reader, why))
		return std::nullopt;
	if (!send_all(sock.get(), "{\"execute\":\"query-cpus-fast\"}\n", deadline)) {
		why = "sending query-cpus-fast failed";
		return std::nullopt;
	}
	auto reply = read_reply(reader, why);
	if (!reply)
		return std::nullopt;
	auto cpus = parse_query_cpus_fast(reply->dump());
	if (!cpus || cpus->empty()) {
		why = "query-cpus-fast: no vCPU thread ids in the reply";
		return std::nullopt;
	}
	std::map<pid_t, pid_t> host_ids = namespace_ids(proc, vmm);
	std::vector<pid_t> tids;
	for (const auto &cpu : *cpus) {
		auto it = host_ids.find(cpu.thread_id);
		if (it == host_ids.end()) {
			why = "query-cpus-fast: thread id " + std::to_string(cpu.thread_id) +
			      " is not a thread of the VMM";
			return std::nullopt;
		}
		tids.push_back(it->second);
	}
	return tids;
}

} // namespace vmmcg
