#include "settler.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "hook.h"
#include "log.h"

namespace vmmcg {

namespace {

// The go fd moves to settler_go_fd and the slot's lock to settler_slot_fd; everything else goes.
void close_other_fds(int go, int slot)
{
	int high = ::fcntl(slot, F_DUPFD_CLOEXEC, settler_slot_fd + 10);
	::dup2(go, settler_go_fd);
	::dup2(high, settler_slot_fd);
	::close_range(settler_slot_fd + 1, ~0U, 0);
}

// Idle scheduling: a settler runs only when nothing else wants the CPU, and never outlasts its bound.
void lower_priority(const Config &config)
{
	struct sched_param param {};
	::sched_setscheduler(0, SCHED_IDLE, &param);
	(void)!::nice(19);
	::alarm(config.settle_timeout_ms / 1000 + stage_bound_seconds);
}

// A free slot among max_settlers: an abstract unix socket "vmm-cgroup-hooks-settler-<n>" bound by the
// settler for as long as it runs. The kernel refuses a second bind of a name (EADDRINUSE) and frees it
// when the settler dies, however it dies: the number of settlers on the node is bounded whoever starts
// them, and nothing is left on disk. (Abstract names belong to the network namespace: the hooks run in
// the runtime's, the host's.)
UniqueFd take_slot(const Config &config)
{
	for (unsigned slot = 0; slot < config.max_settlers; ++slot) {
		UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (!sock.valid())
			return {};
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::string name = "vmm-cgroup-hooks-settler-" + std::to_string(slot);
		std::memcpy(addr.sun_path + 1, name.data(), name.size()); // sun_path[0] = 0: abstract
		auto len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
		if (::bind(sock.get(), reinterpret_cast<struct sockaddr *>(&addr), len) == 0)
			return sock;
		if (errno != EADDRINUSE)
			return {};
	}
	return {};
}

void redirect_stdio()
{
	int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		std::_Exit(1);
	for (int fd = 0; fd < 3; ++fd)
		::dup2(null, fd);
	if (null > 2)
		::close(null);
}

// In the first child: a new session, then the settler itself in a second child, so that it is reparented
// when this one exits after reporting its pid.
[[noreturn]] void run_detached(UniqueFd &pid_write, UniqueFd &go_read, const UniqueFd &slot,
			       const Config &config, const std::function<int(int go_fd)> &work)
{
	::setsid();
	pid_t grandchild = ::fork();
	if (grandchild != 0) {
		(void)!::write(pid_write.get(), &grandchild, sizeof(grandchild));
		std::_Exit(grandchild < 0 ? 1 : 0);
	}
	redirect_stdio();
	close_other_fds(go_read.get(), slot.get());
	drop_stderr_logging();
	lower_priority(config);
	int status = 1;
	try {
		status = work(settler_go_fd);
	} catch (const std::exception &e) {
		spdlog::error("settler: {}", e.what());
	}
	std::_Exit(status);
}

} // namespace

std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const Config &config,
					   const std::function<int(int go_fd)> &work)
{
	UniqueFd slot = take_slot(config);
	if (!slot.valid())
		return std::nullopt;
	int pid_pipe[2], go_pipe[2];
	if (::pipe2(pid_pipe, O_CLOEXEC) != 0)
		return std::nullopt;
	if (::pipe2(go_pipe, O_CLOEXEC) != 0) {
		::close(pid_pipe[0]);
		::close(pid_pipe[1]);
		return std::nullopt;
	}
	UniqueFd pid_read(pid_pipe[0]), pid_write(pid_pipe[1]), go_read(go_pipe[0]), go_write(go_pipe[1]);

	pid_t child = ::fork();
	if (child < 0)
		return std::nullopt;
	if (child == 0)
		run_detached(pid_write, go_read, slot, config, work);
	pid_write.reset();
	go_read.reset();
	int status = 0;
	while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
	}
	pid_t settler = 0;
	ssize_t n = ::read(pid_read.get(), &settler, sizeof(settler));
	if (n != sizeof(settler) || settler <= 0)
		return std::nullopt;
	auto ref = proc.process(settler);
	if (!ref) // it already finished: nothing to track
		ref = ProcessRef{settler, 0};
	return SettlerHandle(*ref, go_write.release());
}

void wait_for_go(int go_fd)
{
	char byte;
	while (::read(go_fd, &byte, 1) < 0 && errno == EINTR) {
	}
}

} // namespace vmmcg
