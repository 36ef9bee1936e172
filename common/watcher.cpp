#include "watcher.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "cleanup.h"
#include "hook.h"
#include "placement.h"
#include "proc_events.h"
#include "settler.h"
#include "systemd.h"

namespace vmmcg {

namespace {

using namespace std::chrono_literals;

// How long a burst of thread events (QEMU's worker pool) is gathered before one pass places them all.
constexpr auto debounce = 20ms;
// The check of the container's limit, and the poll where there are no events.
constexpr auto tick = 1s;
// A VMM may name a vCPU thread before it opens the thread's KVM fd, and opening an fd is no process event:
// a pass that found vCPU-named threads KVM did not prove yet is tried again on this many ticks, then only
// at the next thread event (a thread named like a vCPU that never gets an fd is an impostor, not worth a
// pass a second for the life of the VMM).
constexpr unsigned unproven_retries = 30;

// The settler's alarm(2) bounds its settling (settle_timeout_ms and a stage's bound); a watcher lives as long
// as its VMM, so from there on the alarm is a watchdog re-armed before each step instead: a step (a wait of
// at most a tick, a pass of at most 200 ms, a check of the limits) that hangs for a stage's bound ends it.
// Before this, every watcher died of SIGALRM settle_timeout_ms + 20 s after poststart.
void rearm_watchdog()
{
	::alarm(stage_bound_seconds + 2);
}

class Watcher
{
public:
	Watcher(const Config &config, const SettlerStart &start, ProcessRef self)
		: config_(config), name_(start.name), id_(start.id), container_(start.container), self_(self),
		  events_(ProcEvents::open())
	{
		watched_ = {container_.pid};
		if (events_)
			events_->watch(watched_);
	}

	int run();

private:
	// The record as it is now, when it still names this process: poststop may have removed it.
	std::optional<Record> current() const;
	void write(Record record) const;
	// Waits up to `up_to`; true when an event about the watched thread groups came (or events were lost).
	bool wait(std::chrono::nanoseconds up_to);
	SettleResult settle(Record &record);
	bool settle_now(Record &record);
	void watch(Record &record, const ProcessRef &vmm, bool look_first);
	void clean_up_if_orphaned();
	bool pass(Backend &backend, const ProcessRef &vmm, std::vector<pid_t> &vcpus, bool &unproven);

	Config config_;
	std::string name_, id_;
	ProcessRef container_, self_;
	std::optional<ProcEvents> events_;
	std::vector<pid_t> watched_;
};

std::optional<Record> Watcher::current() const
{
	auto record = read_record(config_.record_dir, name_, id_);
	if (!record || (record->settler != self_ && record->watcher != self_))
		return std::nullopt;
	if (record->container && *record->container != container_)
		return std::nullopt; // named by a record of another container: --settler by hand
	return record;
}

void Watcher::write(Record record) const
{
	if (current())
		replace_record(config_.record_dir, record);
}

bool Watcher::wait(std::chrono::nanoseconds up_to)
{
	if (!events_) {
		std::this_thread::sleep_for(up_to);
		return false;
	}
	bool lost = false;
	auto events = events_->wait(std::chrono::duration_cast<std::chrono::milliseconds>(up_to), lost);
	// A launcher's children: the VMM may be one of them (at most ProcEvents::max_watched thread groups).
	bool grew = false;
	for (const auto &event : events)
		if (event.kind == ProcEvent::Kind::fork && event.pid == event.tgid &&
		    std::find(watched_.begin(), watched_.end(), event.parent_tgid) != watched_.end() &&
		    watched_.size() < ProcEvents::max_watched) {
			watched_.push_back(event.tgid);
			grew = true;
		}
	if (grew)
		events_->watch(watched_);
	return lost || !events.empty();
}

SettleResult Watcher::settle(Record &record)
{
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.settle_timeout_ms);
	PlacementLoop loop(*backend, ProcFs(), PlacementOptions::from(config_), container_);
	return loop.run(until, [this](std::chrono::nanoseconds nap) { wait(nap); });
}

// One pass over a placed VMM; true when the vCPUs it found differ from `vcpus` (then updated). `unproven`:
// it found vCPU-named threads KVM did not prove, so it moved none of them and `vcpus` stays as it was.
bool Watcher::pass(Backend &backend, const ProcessRef &vmm, std::vector<pid_t> &vcpus, bool &unproven)
{
	PlacementLoop loop(backend, ProcFs(), PlacementOptions::from(config_), container_);
	loop.set_vmm(vmm);
	SettleResult result = loop.run(std::chrono::steady_clock::now() + 200ms);
	unproven = result.unproven;
	if (!result.vmm || result.unproven || result.vcpus == vcpus)
		return false;
	spdlog::info("watcher: VMM pid {} has {} vCPU threads now (was {}): placed", vmm.pid,
		     result.vcpus.size(), vcpus.size());
	vcpus = result.vcpus;
	return true;
}

// look_first: one pass before the first wait. A thread made between poststart's last listing and this
// process's subscription to the events was seen by neither.
void Watcher::watch(Record &record, const ProcessRef &vmm, bool look_first)
{
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	watched_ = {vmm.pid};
	if (events_)
		events_->watch(watched_);
	ProcFs proc;
	auto next_check = std::chrono::steady_clock::now() + tick;
	unsigned retries = 0; // ticks left on which an unproven pass is tried again
	while (proc.alive(vmm)) {
		rearm_watchdog();
		// look_first: the first pass comes before any wait, as if woken.
		bool woken = std::exchange(look_first, false);
		if (!woken) {
			woken = wait(std::max<std::chrono::nanoseconds>(
				next_check - std::chrono::steady_clock::now(), 0ns));
			if (woken)
				wait(debounce);
		}
		if (woken && !proc.alive(vmm))
			break; // its exit woke this: no pass over a VMM that has ended
		bool at_tick = std::chrono::steady_clock::now() >= next_check;
		bool retry = at_tick && retries > 0;
		bool changed = false;
		if (woken || !events_ || retry) {
			bool unproven = false;
			changed = pass(*backend, vmm, record.vcpus, unproven);
			if (!unproven)
				retries = 0;
			else if (woken)
				retries = unproven_retries;
			else if (retry)
				--retries;
		}
		if (at_tick) {
			changed |= backend->follow_limits(OverheadPolicy::from(config_));
			next_check = std::chrono::steady_clock::now() + tick;
		}
		if (changed)
			write(record);
		if (!current())
			return; // poststop removed the record: nothing left to watch for
	}
}

// The VMM has exited (or never came). poststop normally follows at once, removes the record and ends
// this process. Where it never comes (conmon killed with the unit that started it, an engine killed), the
// container is gone once its process is dead and the runtime has removed S: then this process removes
// what poststop would have. It waits for that only while the container's process is dead, a minute at most,
// and leaves poststop_grace seconds after S is gone to poststop: the engine runs poststop after the
// runtime removed S, seconds later on a slow node (podman under TCG), and poststop's line is the one that
// says what the container's end removed.
void Watcher::clean_up_if_orphaned()
{
	constexpr int window = 60, poststop_grace = 10;
	int gone_for = 0;
	// Out of SCHED_IDLE, still at nice 19: the wait is a few system calls a second for a minute at most,
	// and at idle priority a node kept busy by its containers could put the clean-up off without bound.
	struct sched_param param {};
	::sched_setscheduler(0, SCHED_OTHER, &param);
	// Bounded: past the window only while S is gone, for at most the grace. A second first: poststop
	// normally comes at once, and looking before it would only compete with it for the CPU.
	for (int second = 0;; ++second) {
		rearm_watchdog();
		std::this_thread::sleep_for(1s);
		std::optional<Record> record = current();
		if (!record)
			return; // poststop ran
		if (record->container && ProcFs().alive(*record->container))
			return; // the container lives on (a launcher whose VMM exited): poststop will come
		gone_for = container_gone(*record) ? gone_for + 1 : 0;
		if (gone_for > poststop_grace) {
			record->settler.reset();
			record->watcher.reset(); // this process: not to be stopped
			spdlog::warn("the container is gone and no poststop came: cleaned up as poststop "
				     "would: {}",
				     clean_up(config_.record_dir, *record).summary());
			return;
		}
		if (gone_for == 0 && second >= window)
			return;
	}
}

int Watcher::run()
{
	std::optional<Record> record = current();
	if (!record)
		return 0;
	// The QMP socket as poststart had it: the configuration's, or the one createRuntime recorded.
	config_.qmp_socket = record->qmp_socket;
	if (systemd_running())
		move_to_own_scope(self_.pid, name_); // not to die with the engine's unit
	// Named as the watcher, poststart's placement was complete: one pass, not the settling loop.
	bool settling = record->settler == self_;
	if (settling && !settle_now(*record))
		return 0;
	bool watching = config_.watch_vmm && record->vmm && !record->vcpus.empty();
	if (watching)
		watch(*record, *record->vmm, !settling);
	clean_up_if_orphaned();
	rearm_watchdog();
	if (std::optional<Record> last = current()) {
		last->watcher.reset();
		replace_record(config_.record_dir, *last);
	}
	return 0;
}

// The settler's part: places until complete (or settle_timeout_ms), then names itself the watcher in the
// record. False when poststop removed the record meanwhile.
bool Watcher::settle_now(Record &record)
{
	SettleResult settled = settle(record);
	std::optional<Record> now = current();
	if (!now)
		return false;
	record = *now;
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	log_settled(settled, "settler");
	store_placement(record, *backend, settled);
	// Named as the watcher until it ends, also when it only waits to see whether poststop comes.
	record.settler.reset();
	record.watcher = self_;
	rearm_watchdog();
	return replace_record(config_.record_dir, record);
}

} // namespace

int settle_and_watch(const Config &config, const SettlerStart &start, int go_fd)
{
	wait_for_go(go_fd);
	auto self = ProcFs().process(::getpid());
	if (!self)
		return 0;
	return Watcher(config, start, *self).run();
}

} // namespace vmmcg
