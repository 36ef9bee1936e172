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

// SIGKILL through a pidfd, whose exit can then be waited for on it (readable once the process has
// ended): no sleep, and no signal to a process that took the pid meanwhile, since the pidfd is checked to
// be the recorded process (its start time) after it is opened. Where pidfd_open is refused (kernels before
// 5.3) the signal goes by pid and the wait polls /proc.
class Stopping
{
public:
	explicit Stopping(const std::optional<ProcessRef> &process)
	{
		if (!process)
			return;
		ProcFs proc;
		fd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, process->pid, 0)));
		if (!fd_.valid() && errno == ESRCH)
			return; // no process has the pid
		if (!proc.alive(*process)) {
			fd_.reset(); // ended (the pid may be another process's now)
			return;
		}
		process_ = *process;
		if (!fd_.valid() || ::syscall(SYS_pidfd_send_signal, fd_.get(), SIGKILL, nullptr, 0) != 0) {
			fd_.reset();
			::kill(process->pid, SIGKILL);
		}
	}

	// Waits until the process has ended (at most about a second).
	void finish()
	{
		if (!process_)
			return;
		if (fd_.valid()) {
			struct pollfd pfd {
				fd_.get(), POLLIN, 0
			};
			while (::poll(&pfd, 1, 1000) < 0 && errno == EINTR) {
			}
		} else {
			ProcFs proc;
			for (int i = 0; i < 200 && proc.alive(*process_); ++i)
				std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
		spdlog::debug("stopped settler pid {}", process_->pid);
		process_.reset();
	}

	// Not waited for: the signal is on its way.
	void let_go()
	{
		if (process_)
			spdlog::debug("stopped watcher pid {} (SIGKILL, its VMM has ended)", process_->pid);
		process_.reset();
	}

private:
	std::optional<ProcessRef> process_;
	UniqueFd fd_;
};

} // namespace

void stop_settler(const std::optional<ProcessRef> &settler)
{
	Stopping(settler).finish();
}

SandboxPresence sandbox_presence(const Record &record)
{
	SandboxPresence presence;
	auto look = [&](const std::string &mount, const std::string &sandbox) {
		try {
			presence.exists = CgroupMount::open(mount).exists(sandbox) || presence.exists;
		} catch (const std::exception &e) {
			if (presence.refused.empty())
				presence.refused = e.what();
		}
	};
	if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups)) {
		presence.known = true;
		look(v2->mount, v2->sandbox);
	} else if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups)) {
		presence.known = !v1->hierarchies.empty();
		for (const auto &h : v1->hierarchies)
			look(h.mount, h.sandbox);
	}
	return presence;
}

bool container_gone(const Record &record)
{
	if (record.container && ProcFs().alive(*record.container))
		return false;
	return sandbox_presence(record).gone();
}

Teardown clean_up(const std::string &record_dir, Record &record)
{
	// Both are SIGKILLed at once. A settler, and the watcher of a VMM that still runs (or none known),
	// may be moving threads: their exit is waited for before the cgroups are torn down. The watcher of a
	// VMM that has ended is not waited for (its exit cost poststop half a millisecond): it has no thread
	// left to move, its own clean-up of an orphan is this one (idempotent), and its record writes are
	// replace_record's, which cannot bring back a record removed below.
	Stopping settler(record.settler), watcher(record.watcher);
	settler.finish();
	if (!record.vmm || ProcFs().alive(*record.vmm))
		watcher.finish();
	else
		watcher.let_go();
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	Teardown teardown = backend ? backend->teardown() : Teardown();
	if (std::error_code ec = remove_record(record_dir, record.name)) {
		spdlog::error("removing {}: {}", record_path(record_dir, record.name), ec.message());
		++teardown.failures;
	}
	return teardown;
}

} // namespace vmmcg
