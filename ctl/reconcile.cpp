#include "reconcile.h"

#include <algorithm>
#include <memory>
#include <variant>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "errors.h"
#include "format.h"
#include "host.h"
#include "inspect.h"
#include "placement.h"
#include "procfs.h"
#include "record.h"
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

// Why this container is not placed again now; empty when it may be. A watcher does not hold reconcile
// back: it places new threads, not one someone moved by hand, and both move threads by the same rules.
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

// Where /proc puts a process in each hierarchy the layout acts in, with the cgroups of this container
// there: S and what the hooks made (O on v1; S/vcpu, S/overhead on v2) or, below S, the container's own.
struct Membership {
	std::string key; // of /proc/<pid>/cgroup: a v1 hierarchy's, or "" for cgroup2
	std::string where;
	std::string sandbox;
	std::string overhead;
};

std::vector<Membership> memberships(const Record &record, const ProcFs &proc, pid_t pid)
{
	std::error_code ec;
	ProcCgroups where = parse_proc_cgroup(proc.read(pid, "cgroup", ec));
	auto at = [&](const std::string &key) {
		auto it = where.find(key);
		return it == where.end() ? std::string("(none)") : it->second;
	};
	std::vector<Membership> out;
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups))
		for (const auto &h : v1->hierarchies)
			out.push_back({h.proc_key, at(h.proc_key), h.sandbox, h.overhead});
	if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups))
		out.push_back({"", at(""), v2->sandbox, v2->overhead()});
	return out;
}

// poststart is given the container's process by the runtime, and createRuntime checked that it is where
// config.json says. reconcile takes it from the record: it must be in this record's cgroups, or the record
// is not this container's (forged, or a pid reused with the same start time), and nothing is placed.
std::string outside_its_cgroups(const Record &record, const ProcFs &proc)
{
	for (const auto &m : memberships(record, proc, record.container->pid)) {
		bool inside =
			m.where == m.sandbox || m.where == m.overhead || m.where.starts_with(m.sandbox + "/");
		if (!inside)
			return "the container's process (pid " + std::to_string(record.container->pid) +
			       ") is in " + printable(m.where) + " (" + (m.key.empty() ? "cgroup2" : m.key) +
			       "), not in this record's cgroups: refusing to place";
	}
	return {};
}

// As poststart stores it, into the record as it is now (a watcher may have rewritten it meanwhile), and
// only while it is still this container's: poststop may have removed it, also between this read and the
// write (replace_record then writes nothing).
void save_placement(const Config &config, const Record &placed)
{
	std::optional<Record> now = read_record(config.record_dir, placed.name, placed.id);
	if (!now || now->container != placed.container)
		return;
	now->vmm = placed.vmm;
	now->vcpus = placed.vcpus;
	now->vcpu_source = placed.vcpu_source;
	replace_record(config.record_dir, *now);
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
	if (result.vmm) {
		store_placement(record, *backend, result);
		save_placement(config, record);
	}
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
	ProcFs proc;
	out.detail = reason_to_skip(record, proc);
	if (!out.detail.empty())
		return out;
	try {
		if (std::string refused = outside_its_cgroups(record, proc); !refused.empty())
			throw HostError(refused);
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
