#include "placement.h"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "qmp.h"
#include "text.h"

namespace vmmcg {

namespace {

constexpr unsigned max_qmp_tries = 5;

std::vector<pid_t> ids_of(const std::vector<ThreadInfo> &threads, const Moves &moves, bool vcpus_only)
{
	std::vector<pid_t> ids;
	for (const auto &thread : threads) {
		bool gone = std::find(moves.gone.begin(), moves.gone.end(), thread.tid) != moves.gone.end();
		if (!gone && (!vcpus_only || thread.vcpu))
			ids.push_back(thread.tid);
	}
	return ids;
}

std::uint64_t youngest(const std::vector<ThreadInfo> &threads)
{
	std::uint64_t latest = 0;
	for (const auto &thread : threads)
		latest = std::max(latest, thread.start_time);
	return latest;
}

} // namespace

PlacementOptions PlacementOptions::from(const Config &config)
{
	PlacementOptions options;
	options.vmm_names = config.vmm_names;
	options.vmm_search_depth = config.vmm_search_depth;
	options.vcpu_thread_patterns = config.vcpu_thread_patterns;
	options.qmp_socket = config.qmp_socket;
	options.qmp_timeout = std::chrono::milliseconds(config.qmp_timeout_ms);
	options.vcpu_proof = config.vcpu_proof;
	options.max_threads = config.max_vmm_threads;
	options.rule.quiet = std::chrono::milliseconds(config.settle_quiet_ms);
	options.rule.tick = clock_tick();
	return options;
}

bool PlacementLoop::find_vmm()
{
	result_.vmm = vmmcg::find_vmm(proc_, container_, options_.vmm_names, options_.vmm_search_depth);
	if (!result_.vmm && !proc_.alive(container_))
		result_.container_gone = true;
	return result_.vmm.has_value();
}

void PlacementLoop::ask_qmp(std::chrono::steady_clock::time_point deadline)
{
	if (!options_.qmp_socket || qmp_vcpus_ || qmp_tries_ >= max_qmp_tries)
		return;
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
									  std::chrono::steady_clock::now());
	if (left <= std::chrono::milliseconds(0))
		return;
	try {
		QmpLimits limits{std::min(options_.qmp_timeout, left)};
		qmp_vcpus_ = query_vcpu_threads(proc_, *result_.vmm, *options_.qmp_socket, limits);
	} catch (const QmpError &e) {
		if (++qmp_tries_ == max_qmp_tries)
			spdlog::warn("QMP {}: {}: vCPUs found by thread names",
				     printable(*options_.qmp_socket), e.what());
		else
			spdlog::debug("QMP {}: {}", printable(*options_.qmp_socket), e.what());
	}
}

std::vector<ThreadInfo> PlacementLoop::threads(const TaskDir &tasks, std::error_code &ec)
{
	result_.unproven = false;
	std::vector<ThreadInfo> listed =
		list_threads(tasks, options_.vcpu_thread_patterns, ec, options_.max_threads);
	if (ec == std::errc::argument_list_too_long) {
		result_.refused =
			"more than " + std::to_string(options_.max_threads) + " threads (max_vmm_threads)";
		return listed;
	}
	if (qmp_vcpus_)
		mark_vcpus(listed, *qmp_vcpus_);
	bool named = std::any_of(listed.begin(), listed.end(),
				 [](const ThreadInfo &t) { return t.vcpu.has_value(); });
	result_.unproven = named && options_.vcpu_proof == VcpuProof::kvm &&
			   !prove_vcpus(proc_, result_.vmm->pid, listed, kvm_fds_);
	if (result_.unproven)
		spdlog::debug("VMM pid {}: no vCPU proven by KVM vCPU fds yet: nothing moves",
			      result_.vmm->pid);
	return listed;
}

PlacementLoop::Step PlacementLoop::pass(std::optional<std::chrono::nanoseconds> &wait,
					std::chrono::steady_clock::time_point deadline)
{
	ask_qmp(deadline);
	result_.vcpu_source = qmp_vcpus_ ? "qmp" : "thread-names";
	PassSummary summary;
	summary.read_at = boot_time();
	std::error_code ec;
	TaskDir tasks(proc_, result_.vmm->pid); // the pass's: listing, moves' checks, and the listing again
	std::vector<ThreadInfo> listed = threads(tasks, ec);
	if (!result_.refused.empty()) {
		spdlog::warn("VMM pid {}: {}: not placed", result_.vmm->pid, result_.refused);
		return Step::done;
	}
	bool any_vcpu = std::any_of(listed.begin(), listed.end(),
				    [](const ThreadInfo &t) { return t.vcpu.has_value(); });
	// Nothing moves without a vCPU: a process that is no VMM, or not yet, stays whole in S.
	Moves moves = ec         ? Moves::vmm_exited()
		      : any_vcpu ? backend_.place(proc_, *result_.vmm, tasks, listed, deadline)
				 : Moves{};
	if (moves.vmm_gone) {
		spdlog::warn("VMM pid {} exited during placement", result_.vmm->pid);
		result_.vmm.reset();
		result_.vcpus.clear();
		return Step::done;
	}
	result_.vcpus = ids_of(listed, moves, true);
	summary.retry = moves.retry;
	summary.vcpus = result_.vcpus.size();
	summary.qmp_vcpus = qmp_vcpus_ ? std::optional(qmp_vcpus_->size()) : std::nullopt;
	summary.youngest = youngest(listed);
	// Threads created or gone while the pass moved others: another pass, after the backoff.
	if (options_.rule.may_complete(summary))
		summary.same_threads = tasks.ids(ec) == ids_of(listed, moves, false) && !ec;
	result_.complete = options_.rule.complete(summary);
	wait = options_.rule.wait(summary, boot_time());
	return result_.complete ? Step::done : Step::again;
}

PlacementLoop::Step PlacementLoop::step(std::optional<std::chrono::nanoseconds> &wait,
					std::chrono::steady_clock::time_point deadline)
{
	if (!result_.vmm && !find_vmm())
		return result_.container_gone ? Step::done : Step::again;
	return pass(wait, deadline);
}

SettleResult PlacementLoop::run(std::chrono::steady_clock::time_point deadline, const Sleep &sleep)
{
	using namespace std::chrono_literals;
	auto delay = std::chrono::steady_clock::duration(5ms);
	for (;;) {
		std::optional<std::chrono::nanoseconds> wait;
		if (step(wait, deadline) == Step::done)
			return result_;
		auto now = std::chrono::steady_clock::now();
		if (now >= deadline)
			return result_;
		std::chrono::steady_clock::duration pause =
			wait ? std::chrono::steady_clock::duration(*wait) : delay;
		auto nap =
			std::chrono::duration_cast<std::chrono::nanoseconds>(std::min(pause, deadline - now));
		if (sleep)
			sleep(nap);
		else
			std::this_thread::sleep_for(nap);
		if (!wait)
			delay = std::min(delay * 2, std::chrono::steady_clock::duration(250ms));
	}
}

void log_settled(const SettleResult &result, const char *who)
{
	if (result.complete)
		spdlog::info("{}: VMM pid {} placed, {} vCPU threads (source: {})", who, result.vmm->pid,
			     result.vcpus.size(), result.vcpu_source);
	else if (result.container_gone)
		spdlog::warn("{}: the container's process exited before a VMM appeared", who);
	else if (result.vmm && result.vcpus.empty())
		spdlog::warn("{}: VMM pid {} has no proven vCPU threads: nothing moved", who,
			     result.vmm->pid);
	else if (result.vmm)
		spdlog::warn("{}: VMM pid {} placed with {} vCPU threads, not complete yet (threads still "
			     "changing, or too young)",
			     who, result.vmm->pid, result.vcpus.size());
	else
		spdlog::warn("{}: no VMM found: nothing moved", who);
}

void store_placement(Record &record, Backend &backend, const SettleResult &result)
{
	record.vmm = result.vmm;
	record.vcpus = result.vcpus;
	record.vcpu_source = result.vmm ? result.vcpu_source : "";
	if (result.vmm && !result.vcpus.empty())
		backend.relax();
}

} // namespace vmmcg
