#include "settler.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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
#include "text.h"
#include "watcher.h"

namespace vmmcg {

namespace {

// A free slot among max_settlers: an abstract unix socket "vmm-cgroup-hooks-settler-<n>" bound by the
// settler for as long as it runs. The kernel refuses a second bind of a name (EADDRINUSE) and frees it
// when the settler dies, however it dies: the number of settlers on the node is bounded whoever starts
// them, and nothing is left on disk. (Abstract names belong to the network namespace: the hooks run in
// the runtime's, the host's.)
UniqueFd take_slot(const Config &config, std::string &why)
{
	for (unsigned slot = 0; slot < config.max_settlers; ++slot) {
		UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (!sock.valid()) {
			why = std::string("socket: ") + std::strerror(errno);
			return {};
		}
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::string name = "vmm-cgroup-hooks-settler-" + std::to_string(slot);
		std::memcpy(addr.sun_path + 1, name.data(), name.size()); // sun_path[0] = 0: abstract
		auto len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
		if (::bind(sock.get(), reinterpret_cast<struct sockaddr *>(&addr), len) == 0)
			return sock;
		if (errno != EADDRINUSE) {
			why = "binding slot " + name + ": " + std::strerror(errno);
			return {};
		}
	}
	why = "all " + std::to_string(config.max_settlers) + " settler slots of this node are taken";
	return {};
}

// What the clone does until its exec, built before the clone. It lives in static storage that nothing
// frees or writes again in this process: the clone reads it until its exec, however far the hook has gone
// on (or unwound) by then. One settler per process.
struct ExecPlan {
	int null_fd = -1, go_fd = -1, slot_fd = -1;
	int last_fd = -1;    // where close_range is missing (kernels before 5.9): the highest fd to close
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

// The clone's system calls. It shares the hook's memory, its thread-local storage included, so it must not
// write errno, which libc's wrappers (and syscall()) do when a call fails: the hook's errno would change
// under it, between a call of its own and its check. Raw system calls write nothing but their registers.
// Elsewhere the clone takes CLONE_VFORK: the hook waits for the exec, and finds errno as the clone left it.
#if defined(__x86_64__)
constexpr bool raw_syscalls = true;
inline long raw_syscall(long number, long a = 0, long b = 0, long c = 0)
{
	long result;
	asm volatile("syscall" : "=a"(result) : "a"(number), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return result;
}
#elif defined(__aarch64__)
constexpr bool raw_syscalls = true;
inline long raw_syscall(long number, long a = 0, long b = 0, long c = 0)
{
	register long x8 asm("x8") = number;
	register long x0 asm("x0") = a;
	register long x1 asm("x1") = b;
	register long x2 asm("x2") = c;
	asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory", "cc");
	return x0;
}
#else
constexpr bool raw_syscalls = false;
inline long raw_syscall(long number, long a = 0, long b = 0, long c = 0)
{
	return ::syscall(number, a, b, c);
}
#endif

// The clone, on its own stack with every signal blocked, while the hook goes on in the same memory: raw
// system calls only, on what the plan holds, and nothing written. Its fd table is its own copy. Stdio on
// /dev/null, the go pipe and the slot at fixed numbers (dup3: the plan's fds are above them, never equal),
// and every other fd closed, before anything else: the runtime waits for the hook's stdout and stderr (and
// whatever else it let the hook inherit) to close. Its own session (it is no group leader, so setsid
// succeeds); idle scheduling before the exec, so that even the exec's work waits for a free CPU. The exec
// ends the sharing.
__attribute__((no_sanitize("address"))) int exec_settler(void *)
{
	for (int fd = 0; fd < 3; ++fd)
		raw_syscall(SYS_dup3, plan.null_fd, fd, 0);
	raw_syscall(SYS_dup3, plan.go_fd, settler_go_fd, 0);
	raw_syscall(SYS_dup3, plan.slot_fd, settler_slot_fd, 0);
	if (plan.last_fd < 0)
		raw_syscall(SYS_close_range, settler_slot_fd + 1, ~0U, 0);
	else
		for (int fd = settler_slot_fd + 1; fd <= plan.last_fd; ++fd)
			raw_syscall(SYS_close, fd);
	raw_syscall(SYS_setsid);
	struct sched_param param {};
	raw_syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, reinterpret_cast<long>(&param));
	raw_syscall(SYS_execve, reinterpret_cast<long>("/proc/self/exe"), reinterpret_cast<long>(plan.argv),
		    reinterpret_cast<long>(plan.envp));
	raw_syscall(SYS_exit_group, 127);
	return 127;
}

// -1 where close_range works; else the highest fd this process has open, for the clone to close one by
// one. Probed on a range that holds no fd (closing nothing); poststart has no other thread to open more.
int last_fd_to_close()
{
	if (::syscall(SYS_close_range, ~0U - 1, ~0U, 0) == 0 || errno != ENOSYS)
		return -1;
	int last = settler_slot_fd;
	if (DIR *d = ::opendir("/proc/self/fd")) {
		while (struct dirent *entry = ::readdir(d))
			if (auto fd = to_number<int>(entry->d_name))
				last = std::max(last, *fd);
		::closedir(d);
	} else {
		last = 1023; // no /proc: the default soft limit of open files
	}
	return last;
}

// A copy of fd at settler_slot_fd + 1 or above, close-on-exec: the clone's dup2 onto 0..4 then always
// makes a new fd (a dup2 onto itself would keep close-on-exec).
UniqueFd above_kept_fds(int fd)
{
	return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, settler_slot_fd + 1));
}

} // namespace

std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const Config &config,
					   const SettlerStart &start, std::string &why)
{
	auto failed = [&why](const char *call) {
		why = std::string(call) + ": " + std::strerror(errno);
		return std::nullopt;
	};
	if (planned) {
		why = "this process started one already";
		return std::nullopt;
	}
	UniqueFd slot = take_slot(config, why);
	if (!slot.valid())
		return std::nullopt;
	int go_pipe[2];
	if (::pipe2(go_pipe, O_CLOEXEC) != 0)
		return failed("pipe2");
	UniqueFd go_read(go_pipe[0]), go_write(go_pipe[1]);
	UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!null.valid())
		return failed("opening /dev/null");
	UniqueFd null_high = above_kept_fds(null.get()), go_high = above_kept_fds(go_read.get()),
		 slot_high = above_kept_fds(slot.get());
	if (!null_high.valid() || !go_high.valid() || !slot_high.valid())
		return failed("fcntl(F_DUPFD_CLOEXEC)");
	if (!make_plan(start, null_high.get(), go_high.get(), slot_high.get())) {
		why = "its arguments (the record's name and id, the configuration's path) exceed " +
		      std::to_string(sizeof(plan.text)) + " bytes";
		return std::nullopt;
	}
	plan.last_fd = last_fd_to_close();
	planned = true;

	// Not a fork: a fork copied the hook's page tables, and each page the hook wrote afterwards was
	// copied too (its memory was the settler's as well). That cost poststart 0.3 ms of its 3 here. The
	// clone shares the memory until its exec, and the hook does not wait for that exec (no CLONE_VFORK).
	sigset_t all, old;
	::sigfillset(&all);
	::pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t settler = ::clone(exec_settler, clone_stack + sizeof(clone_stack),
				CLONE_VM | (raw_syscalls ? 0 : CLONE_VFORK) | SIGCHLD, nullptr);
	::pthread_sigmask(SIG_SETMASK, &old, nullptr);
	if (settler < 0)
		return failed("clone");
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
	// Its go pipe and slot are its own: not the systemd helper's, which would hold the slot after a
	// SIGKILL of this process until its own D-Bus timeout.
	for (int fd : {settler_go_fd, settler_slot_fd})
		::fcntl(fd, F_SETFD, FD_CLOEXEC);
	// Not in the runtime's bundle directory for the VMM's life (every path it uses is absolute).
	(void)!::chdir("/");
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
