#include "reconcile.h"

#include <algorithm>
#include <memory>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "format.h"
#include "inspect.h"
#include "placement.h"
#include "procfs.h"
#include "text.h"

namespace vmmcg::ctl {

namespace {

using Result = ReconcileOutcome::Result;

ThreadSnapshot snapshot(const Record &record, const Config &config, const ProcFs &proc)
{
	ThreadSnapshot out;
	auto vmm = current_vmm(record, config, proc);
	if (!vmm || !vmm->process.alive)
		return out;
	ContainerStatus status;
	status.layout = layout_name(record.cgroups);
	status.hierarchies = hierarchies_of(record, proc, record.container->pid);
	for (const auto &thread : inspect_threads(proc, vmm->process.pid, record, config, status.hierarchies))
		out[thread.tid] = {thread.name, location_label(status, thread)};
	return out;
}

// Why this container is not placed again now; empty when it may be.
std::string reason_to_skip(const Record &record, const ProcFs &proc)
{
	if (record.mode == Mode::sandbox_only)
		return "sandbox-only mode: nothing is placed";
	if (record.phase == Record::Phase::creating)
		return "createRuntime did not finish";
	if (!record.container || !proc.alive(*record.container))
		return "the container's process is gone (gc removes what is left)";
	if (record.settler && proc.alive(*record.settler))
		return "a settler (pid " + std::to_string(record.settler->pid) + ") is still placing it";
	return {};
}

// As poststart stores it; written only while the record is still there (poststop may have removed it).
void store_placement(const Config &config, Record &record, Backend &backend, const SettleResult &result)
{
	record.vmm = result.vmm;
	record.vcpus = result.vcpus;
	record.vcpu_source = result.vmm ? result.vcpu_source : "";
	if (result.vmm && !result.vcpus.empty())
		backend.relax();
	if (read_record(config.record_dir, record.name, record.id))
		write_record(config.record_dir, record);
}

std::string placed_text(const SettleResult &result)
{
	if (!result.refused.empty())
		return "refused: " + result.refused;
	if (!result.vmm)
		return result.container_gone ? "the container's process exited" : "no VMM found";
	std::string text = "VMM pid " + std::to_string(result.vmm->pid) + ", " +
			   std::to_string(result.vcpus.size()) + " vCPU threads (" + result.vcpu_source + ")";
	return result.complete ? text : text + ", not verified within the time given";
}

void place_again(const Config &config, Record record, std::chrono::milliseconds budget, ReconcileOutcome &out)
{
	ProcFs proc;
	Config effective = config;
	effective.qmp_socket = record.qmp_socket;
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	ThreadSnapshot before = snapshot(record, effective, proc);
	auto deadline = std::chrono::steady_clock::now() + budget;
	SettleResult result =
		PlacementLoop(*backend, proc, PlacementOptions::from(effective), *record.container)
			.run(deadline);
	if (result.vmm)
		store_placement(config, record, *backend, result);
	out.moves = diff_moves(before, snapshot(record, effective, proc));
	out.result = result.complete && !result.vcpus.empty() ? Result::placed : Result::incomplete;
	out.detail = placed_text(result);
	spdlog::info("reconcile: {}; {} threads moved", out.detail, out.moves.size());
}

const char *result_name(Result result)
{
	switch (result) {
	case Result::placed:
		return "placed";
	case Result::incomplete:
		return "NOT complete";
	case Result::skipped:
		return "skipped";
	case Result::failed:
		return "FAILED";
	}
	return "?";
}

} // namespace

std::vector<ThreadMove> diff_moves(const ThreadSnapshot &before, const ThreadSnapshot &after)
{
	std::vector<ThreadMove> moves;
	for (const auto &[tid, was] : before) {
		auto now = after.find(tid);
		if (now != after.end() && now->second.second != was.second)
			moves.push_back({tid, now->second.first, was.second, now->second.second});
	}
	return moves;
}

ReconcileOutcome reconcile(const Config &config, const Record &record, std::chrono::milliseconds budget)
{
	ReconcileOutcome out;
	out.id = record.id;
	out.name = record.name;
	out.detail = reason_to_skip(record, ProcFs());
	if (!out.detail.empty())
		return out;
	try {
		place_again(config, record, budget, out);
	} catch (const std::exception &e) {
		out.result = Result::failed;
		out.detail = e.what();
	}
	return out;
}

std::string format_reconcile(const std::vector<ReconcileOutcome> &outcomes)
{
	std::string out;
	if (outcomes.empty())
		return "no container is managed here\n";
	for (const auto &outcome : outcomes) {
		out += printable(outcome.id) + ": " + result_name(outcome.result) + ": " +
		       printable(outcome.detail);
		if (outcome.result == Result::placed || outcome.result == Result::incomplete)
			out += "; " + std::to_string(outcome.moves.size()) + " threads moved";
		out += "\n";
		std::size_t width = 0;
		for (const auto &move : outcome.moves)
			width = std::max(width, printable(move.name).size());
		for (const auto &move : outcome.moves) {
			std::string name = printable(move.name);
			out += "  " + std::to_string(move.tid) + "  " + name +
			       std::string(width - name.size(), ' ') + "  " + move.from + " -> " + move.to +
			       "\n";
		}
	}
	return out;
}

bool reconcile_ok(const std::vector<ReconcileOutcome> &outcomes)
{
	return std::none_of(outcomes.begin(), outcomes.end(), [](const ReconcileOutcome &o) {
		return o.result == Result::failed || o.result == Result::incomplete;
	});
}

} // namespace vmmcg::ctl
