// `vmm-cgroupctl reconcile`: places a container's VMM again now (after someone moved its threads, after a
// vCPU was added), with poststart's rules, since it runs poststart's placement loop over the same backend:
// the VMM found from the container's process and checked to be in this container's cgroups, vCPUs proven
// (config.h vcpu_proof), nothing moved without them, only this VMM's threads. Then it stores the placement
// in the record, as poststart does.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "record.h"

namespace vmmcg::ctl {

// How long one container's placement loop may run.
inline constexpr std::chrono::milliseconds reconcile_budget{2000};

struct ThreadMove {
	pid_t tid = 0;
	std::string name;
	std::string from; // as status shows it: "O", "S", "S/vcpu", a path...
	std::string to;
};

struct ReconcileOutcome {
	enum class Result { placed, incomplete, skipped, failed };
	std::string id;
	std::string name;
	Result result = Result::skipped;
	std::string detail; // why skipped or failed, or what was placed
	std::vector<ThreadMove> moves;
};

// Each thread's name and where it is, by tid.
using ThreadSnapshot = std::map<pid_t, std::pair<std::string, std::string>>;

// The threads found in both whose place changed.
std::vector<ThreadMove> diff_moves(const ThreadSnapshot &before, const ThreadSnapshot &after);

ReconcileOutcome reconcile(const Config &config, const Record &record,
			   std::chrono::milliseconds budget = reconcile_budget);

std::string format_reconcile(const std::vector<ReconcileOutcome> &outcomes);
// placed and skipped are fine; failed, and incomplete (not every vCPU placed and verified), are not.
bool reconcile_ok(const std::vector<ReconcileOutcome> &outcomes);

} // namespace vmmcg::ctl
