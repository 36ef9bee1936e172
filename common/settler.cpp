#include "settler.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

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

// In the child: a new session (it is no group leader, so setsid succeeds), then the work. One fork, not the
// daemon's two: the hook exits right after the hand-over, and its child is then reparented (to the
// runtime's subreaper, the shim, or init) as a grandchild would be; waiting for a first child to fork and
// exit cost poststart most of a millisecond. It never had a terminal to reacquire: stdio is /dev/null.
[[noreturn]] void run_detached(UniqueFd &go_read, const UniqueFd &slot, const Config &config,
			       const std::function<int(int go_fd)> &work)
{
	::setsid();
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
	int go_pipe[2];
	if (::pipe2(go_pipe, O_CLOEXEC) != 0)
		return std::nullopt;
	UniqueFd go_read(go_pipe[0]), go_write(go_pipe[1]);

	pid_t settler = ::fork();
	if (settler < 0)
		return std::nullopt;
	if (settler == 0)
		run_detached(go_read, slot, config, work);
	go_read.reset();
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
