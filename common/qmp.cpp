#include "qmp.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <system_error>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "paths.h"
#include "text.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string &why)
{
	throw QmpError(why);
}

[[noreturn]] void fail_errno(const std::string &what)
{
	fail(what + ": " + std::strerror(errno));
}

int remaining_ms(Clock::time_point deadline)
{
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return left > 0 ? static_cast<int>(left) : 0;
}

// Opens the socket path inside the VMM's root: symlinks resolve within it and ".." cannot climb out.
UniqueFd open_in_root(const ProcFs &proc, pid_t vmm, const std::string &path)
{
	std::string root = proc.path(vmm, "root");
	UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!root_fd.valid())
		fail_errno("opening " + root);
	struct open_how how {};
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	long fd = ::syscall(SYS_openat2, root_fd.get(), path.c_str() + 1, &how, sizeof(how));
	if (fd < 0)
		fail_errno("opening " + path + " in the VMM's root");
	UniqueFd socket_fd(static_cast<int>(fd));
	struct stat st {};
	if (::fstat(socket_fd.get(), &st) != 0 || !S_ISSOCK(st.st_mode))
		fail(path + " in the VMM's root is not a socket");
	return socket_fd;
}

// Connects through the O_PATH fd (/proc/self/fd/N), so the path is not resolved a second time.
UniqueFd connect_socket(int path_fd, Clock::time_point deadline)
{
	UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!sock.valid())
		fail_errno("socket");
	struct sockaddr_un addr {};
	addr.sun_family = AF_UNIX;
	std::string name = "/proc/self/fd/" + std::to_string(path_fd);
	std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
	if (::connect(sock.get(), reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) == 0)
		return sock;
	if (errno != EINPROGRESS && errno != EAGAIN)
		fail_errno("connect");
	struct pollfd pfd {
		sock.get(), POLLOUT, 0
	};
	int err = 0;
	socklen_t len = sizeof(err);
	if (::poll(&pfd, 1, remaining_ms(deadline)) != 1 ||
	    ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
		fail("connect: timed out or refused");
	return sock;
}

class LineReader
{
public:
	LineReader(int fd, Clock::time_point deadline, std::size_t limit)
		: fd_(fd), deadline_(deadline), limit_(limit)
	{}

	// The next line; throws QmpError on timeout, EOF, error or when the peer sent more than the limit.
	std::string next()
	{
		for (;;) {
			std::size_t eol = buffer_.find('\n');
			if (eol != std::string::npos) {
				std::string line = buffer_.substr(0, eol);
				buffer_.erase(0, eol + 1);
				return line;
			}
			receive();
		}
	}

private:
	void receive()
	{
		if (total_ > limit_)
			fail("response larger than " + std::to_string(limit_) + " bytes");
		struct pollfd pfd {
			fd_, POLLIN, 0
		};
		if (::poll(&pfd, 1, remaining_ms(deadline_)) <= 0)
			fail("no answer in time");
		char buf[4096];
		ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (n < 0)
			fail_errno("recv");
		if (n == 0)
			fail("connection closed");
		total_ += static_cast<std::size_t>(n);
		buffer_.append(buf, static_cast<std::size_t>(n));
	}

	int fd_;
	Clock::time_point deadline_;
	std::size_t limit_;
	std::size_t total_ = 0;
	std::string buffer_;
};

void send_all(int fd, std::string_view text, Clock::time_point deadline)
{
	while (!text.empty()) {
		ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd {
				fd, POLLOUT, 0
			};
			if (::poll(&pfd, 1, remaining_ms(deadline)) != 1)
				fail("sending: timed out");
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_errno("sending");
		text.remove_prefix(static_cast<std::size_t>(n));
	}
}

// Reads lines until a reply ("return" or "error"); QMP interleaves events, which are skipped.
nlohmann::json read_reply(LineReader &reader)
{
	for (;;) {
		nlohmann::json doc = nlohmann::json::parse(reader.next(), nullptr, false);
		if (doc.is_discarded() || !doc.is_object())
			fail("not QMP: a line that is not a JSON object");
		if (doc.contains("event"))
			continue;
		if (doc.contains("error"))
			fail("QMP error: " +
			     printable(doc["error"].value("desc", std::string("(no description)"))));
		if (doc.contains("return"))
			return doc;
		fail("not QMP: unexpected reply");
	}
}

nlohmann::json execute(int sock, LineReader &reader, std::string_view command, Clock::time_point deadline)
{
	send_all(sock, "{\"execute\":\"" + std::string(command) + "\"}\n", deadline);
	return read_reply(reader);
}

// Namespace tid -> host tid for every thread of the VMM.
std::map<pid_t, pid_t> namespace_ids(const ProcFs &proc, pid_t vmm)
{
	std::map<pid_t, pid_t> ids;
	std::error_code ec;
	for (pid_t tid : proc.thread_ids(vmm, ec)) {
		std::error_code read_ec;
		std::string status = proc.read_task(vmm, tid, "status", read_ec);
		if (auto inner = parse_innermost_nspid(status); !read_ec && inner)
			ids.emplace(*inner, tid);
	}
	return ids;
}

std::vector<pid_t> to_host_ids(const ProcFs &proc, pid_t vmm, const std::vector<QmpCpu> &cpus)
{
	std::map<pid_t, pid_t> host_ids = namespace_ids(proc, vmm);
	std::vector<pid_t> tids;
	for (const auto &cpu : cpus) {
		auto it = host_ids.find(cpu.thread_id);
		if (it == host_ids.end())
			fail("query-cpus-fast: thread id " + std::to_string(cpu.thread_id) +
			     " is not a thread of the VMM");
		tids.push_back(it->second);
	}
	return tids;
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

namespace {

// The process that listens on the socket is the VMM, or the answer is not the VMM's to give.
void check_peer(int sock, const ProcessRef &vmm)
{
	struct ucred cred {};
	socklen_t len = sizeof(cred);
	if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		fail_errno("SO_PEERCRED");
	if (cred.pid != vmm.pid)
		fail("the socket is served by pid " + std::to_string(cred.pid) + ", not by the VMM (pid " +
		     std::to_string(vmm.pid) + ")");
}

} // namespace

std::vector<pid_t> query_vcpu_threads(const ProcFs &proc, const ProcessRef &ref,
				      const std::string &socket_path, const QmpLimits &limits)
{
	pid_t vmm = ref.pid;
	if (!is_clean_absolute(socket_path) || socket_path == "/")
		fail("socket path '" + printable(socket_path) + "' is not a clean absolute path");
	auto deadline = Clock::now() + limits.total;
	UniqueFd path_fd = open_in_root(proc, vmm, socket_path);
	UniqueFd sock = connect_socket(path_fd.get(), deadline);
	check_peer(sock.get(), ref);
	LineReader reader(sock.get(), deadline, limits.max_response);
	nlohmann::json hello = nlohmann::json::parse(reader.next(), nullptr, false);
	if (hello.is_discarded() || !hello.is_object() || !hello.contains("QMP"))
		fail("not QMP: no greeting");
	execute(sock.get(), reader, "qmp_capabilities", deadline);
	auto cpus = parse_query_cpus_fast(execute(sock.get(), reader, "query-cpus-fast", deadline).dump());
	if (!cpus || cpus->empty())
		fail("query-cpus-fast: no vCPU thread ids in the reply");
	return to_host_ids(proc, vmm, *cpus);
}

} // namespace vmmcg
