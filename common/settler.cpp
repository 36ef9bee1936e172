#include "settler.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "log.h"

namespace vmmcg {

namespace {

void close_other_fds(int keep)
{
	// The kept fd moves to settler_go_fd; everything above goes.
	if (keep != settler_go_fd) {
		::dup2(keep, settler_go_fd);
		::close(keep);
	}
	::close_range(settler_go_fd + 1, ~0U, 0);
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
[[noreturn]] void run_detached(UniqueFd &pid_write, UniqueFd &go_read,
			       const std::function<int(int go_fd)> &work)
{
	::setsid();
	pid_t grandchild = ::fork();
	if (grandchild != 0) {
		(void)!::write(pid_write.get(), &grandchild, sizeof(grandchild));
		std::_Exit(grandchild < 0 ? 1 : 0);
	}
	int go = go_read.release();
	redirect_stdio();
	close_other_fds(go);
	drop_stderr_logging();
	int status = 1;
	try {
		status = work(settler_go_fd);
	} catch (const std::exception &e) {
		spdlog::error("settler: {}", e.what());
	}
	std::_Exit(status);
}

} // namespace

std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const std::function<int(int go_fd)> &work)
{
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
		run_detached(pid_write, go_read, work);
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
