#include "cleanup.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "cgroupfs.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

// SIGKILL through a pidfd, and a wait for the exit on it (readable once the process has ended): no
// sleep, and no signal to a process that took the pid meanwhile, since the pidfd is checked to be the
// recorded process (its start time) after it is opened. False where pidfd_open is refused (kernels
// before 5.3): the caller signals by pid.
bool kill_by_pidfd(const ProcFs &proc, const ProcessRef &process)
{
	UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, process.pid, 0)));
	if (!fd.valid())
		return false;
	if (!proc.alive(process))
		return true; // the pid is another process's now: the recorded one has ended
	if (::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0) != 0)
		return false;
	struct pollfd pfd {
		fd.get(), POLLIN, 0
	};
	while (::poll(&pfd, 1, 1000) < 0 && errno == EINTR) {
	}
	return true;
}

} // namespace

void stop_settler(const std::optional<ProcessRef> &settler)
{
	ProcFs proc;
	if (!settler || !proc.alive(*settler))
		return;
	if (!kill_by_pidfd(proc, *settler)) {
		::kill(settler->pid, SIGKILL);
		for (int i = 0; i < 200 && proc.alive(*settler); ++i)
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
	spdlog::info("stopped settler pid {}", settler->pid);
}

bool container_gone(const Record &record)
{
	if (record.container && ProcFs().alive(*record.container))
		return false;
	auto sandbox_gone = [](const std::string &mount, const std::string &sandbox) {
		try {
			return !CgroupMount::open(mount).exists(sandbox);
		} catch (const std::exception &) {
			return false;
		}
	};
	if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups))
		return sandbox_gone(v2->mount, v2->sandbox);
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups)) {
		for (const auto &h : v1->hierarchies)
			if (!sandbox_gone(h.mount, h.sandbox))
				return false;
		return !v1->hierarchies.empty();
	}
	return false;
}

std::size_t clean_up(const std::string &record_dir, Record &record)
{
	stop_settler(record.settler);
	stop_settler(record.watcher);
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	std::size_t failures = backend ? backend->teardown() : 0;
	if (std::error_code ec = remove_record(record_dir, record.name)) {
		spdlog::error("removing {}: {}", record_path(record_dir, record.name), ec.message());
		++failures;
	}
	return failures;
}

} // namespace vmmcg
