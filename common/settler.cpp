#include "settler.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "hook.h"
#include "log.h"
#include "watcher.h"

namespace vmmcg {

namespace {

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

// What the clone does until its exec, built before the clone. It lives in static storage that nothing
// frees or writes again in this process: the clone reads it until its exec, however far the hook has gone
// on (or unwound) by then. One settler per process.
struct ExecPlan {
	int null_fd = -1, go_fd = -1, slot_fd = -1;
	char text[3 * 4096]; // the arguments, each ended by a NUL
	char *argv[12];
	char *envp[1]; // an empty environment
};
ExecPlan plan;
bool planned = false;
alignas(64) char clone_stack[64 * 1024];

bool make_plan(const SettlerStart &start, int null_fd, int go_fd, int slot_fd)
{
	std::vector<std::string> args = {program_invocation_name,
					 "--settler",
					 start.name,
					 start.id,
					 std::to_string(start.container.pid),
					 std::to_string(start.container.start_time)};
	if (start.config_path)
		args.insert(args.end(), {"--config", *start.config_path});
	std::size_t used = 0, n = 0;
	for (const std::string &arg : args) {
		if (arg.find('\0') != std::string::npos || used + arg.size() + 1 > sizeof(plan.text))
			return false;
		char *at = plan.text + used;
		std::memcpy(at, arg.data(), arg.size());
		at[arg.size()] = '\0';
		plan.argv[n++] = at;
		used += arg.size() + 1;
	}
	plan.argv[n] = nullptr;
	plan.envp[0] = nullptr;
	plan.null_fd = null_fd;
	plan.go_fd = go_fd;
	plan.slot_fd = slot_fd;
	return true;
}

// The clone, on its own stack with every signal blocked, while the hook goes on in the same memory: system
// calls only, on what the plan holds, and nothing written (these wrappers write errno only when a call
// fails). Its fd table is its own copy. Stdio on /dev/null, the go pipe and the slot at fixed numbers, and
// every other fd closed, before anything else: the runtime waits for the hook's stdout and stderr (and
// whatever else it let the hook inherit) to close. Its own session (it is no group leader, so setsid
// succeeds); idle scheduling before the exec, so that even the exec's work waits for a free CPU. The exec
// ends the sharing.
__attribute__((no_sanitize("address"))) int exec_settler(void *)
{
	for (int fd = 0; fd < 3; ++fd)
		::dup2(plan.null_fd, fd);
	::dup2(plan.go_fd, settler_go_fd);
	::dup2(plan.slot_fd, settler_slot_fd);
	::close_range(settler_slot_fd + 1, ~0U, 0);
	::setsid();
	struct sched_param param {};
	::sched_setscheduler(0, SCHED_IDLE, &param);
	::execve("/proc/self/exe", plan.argv, plan.envp);
	::_exit(127);
}

// A copy of fd at settler_slot_fd + 1 or above, close-on-exec: the clone's dup2 onto 0..4 then always
// makes a new fd (a dup2 onto itself would keep close-on-exec).
UniqueFd above_kept_fds(int fd)
{
	return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, settler_slot_fd + 1));
}

} // namespace

std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const Config &config,
					   const SettlerStart &start)
{
	if (planned)
		return std::nullopt;
	UniqueFd slot = take_slot(config);
	if (!slot.valid())
		return std::nullopt;
	int go_pipe[2];
	if (::pipe2(go_pipe, O_CLOEXEC) != 0)
		return std::nullopt;
	UniqueFd go_read(go_pipe[0]), go_write(go_pipe[1]);
	UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!null.valid())
		return std::nullopt;
	UniqueFd null_high = above_kept_fds(null.get()), go_high = above_kept_fds(go_read.get()),
		 slot_high = above_kept_fds(slot.get());
	if (!null_high.valid() || !go_high.valid() || !slot_high.valid())
		return std::nullopt;
	if (!make_plan(start, null_high.get(), go_high.get(), slot_high.get())) {
		spdlog::warn(
			"settler: its arguments (the record's name and id, the configuration's path) exceed "
			"{} bytes",
			sizeof(plan.text));
		return std::nullopt;
	}
	planned = true;

	// Not a fork: a fork copied the hook's page tables, and each page the hook wrote afterwards was
	// copied too (its memory was the settler's as well). That cost poststart 0.3 ms of its 3 here. The
	// clone shares the memory until its exec, and the hook does not wait for that exec (no CLONE_VFORK).
	sigset_t all, old;
	::sigfillset(&all);
	::pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t settler = ::clone(exec_settler, clone_stack + sizeof(clone_stack), CLONE_VM | SIGCHLD, nullptr);
	::pthread_sigmask(SIG_SETMASK, &old, nullptr);
	if (settler < 0)
		return std::nullopt;
	auto ref = proc.process(settler);
	if (!ref) // it already finished: nothing to track
		ref = ProcessRef{settler, 0};
	return SettlerHandle(*ref, go_write.release());
}

int run_settler(const Config &config, const SettlerStart &start)
{
	// The clone set the fds, the session and SCHED_IDLE before the exec; the signals it blocked come
	// back.
	sigset_t none;
	::sigemptyset(&none);
	::sigprocmask(SIG_SETMASK, &none, nullptr);
	// Its name as the hook's (an exec of /proc/self/exe names the process "exe").
	::prctl(PR_SET_NAME, program_invocation_short_name, 0, 0, 0);
	drop_stderr_logging();
	(void)!::nice(19);
	::alarm(config.settle_timeout_ms / 1000 + stage_bound_seconds);
	int status = 1;
	try {
		status = settle_and_watch(config, start, settler_go_fd);
	} catch (const std::exception &e) {
		spdlog::error("settler: {}", e.what());
	}
	return status;
}

void wait_for_go(int go_fd)
{
	char byte;
	while (::read(go_fd, &byte, 1) < 0 && errno == EINTR) {
	}
}

} // namespace vmmcg
