// `vmm-cgroupctl gc`: removes what belongs to containers that are gone (an engine killed before poststop, a
// createRuntime killed midway) with cleanup.h clean_up, as poststop would have: the settler or watcher, the
// cgroups the record lists, the record. Never anything of a live container: a container whose process or VMM
// runs, or whose cgroups still hold a task, is kept; so is a record that cannot be trusted to name only its
// own (a mount that is no cgroup file system, a settler or watcher that is no fork of poststart, an O, S or
// process another record names too). Also reports overhead cgroups no record names (beside a
// recorded S, or below an overhead root) and, with --force-orphans, removes those that hold no task.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config.h"
#include "model.h"
#include "records.h"

namespace vmmcg::ctl {

// What gc looks at for one record.
struct GcFacts {
	bool container_known = false; // the record names the container's process (pid and start time)
	bool container_alive = false;
	bool vmm_alive = false;
	bool cgroups_known = false;  // the record names S (split mode)
	bool sandbox_exists = false; // S exists in at least one hierarchy
	bool tasks_inside = false;   // S, O or S's threaded children hold a task
	// A recorded mount that is not a cgroup file system (or cannot be opened): nothing can be checked
	// there, and nothing is removed. Empty when every mount opened.
	std::string mount_refused;
	// A settler or watcher of the record still runs (it ends with the VMM; clean_up stops it first).
	bool settler_alive = false;
	bool watcher_alive = false;
	// One that runs but is no fork of poststart (its executable is not vmm-cgroup-poststart): the pid is
	// someone else's, and nothing is stopped or removed. Empty when there is none.
	std::string foreign_helper;
	// What clean_up would remove or stop (O, S on v2, the settler, the watcher) that another record names
	// too: one of them is forged or stale, and neither is collected. Empty when there is none.
	std::string shared_claim;
};

struct GcDecision {
	bool remove = false;
	std::string reason;
};

GcDecision decide_gc(const GcFacts &facts);

struct GcEntry {
	std::string id;
	std::string name;
	GcDecision decision;
	std::size_t failures = 0; // what clean_up could not remove
};

struct Orphan {
	std::string mount;
	std::string path;
	std::string instance; // the instance name in its name
	bool empty = false;   // no task and no child cgroup
	bool removed = false;
	std::string error; // why it could not be removed: a failure of gc
	// Why it was left alone though empty: a record of its name appeared meanwhile (a createRuntime that
	// started during gc writes its record before its first mkdir). Its own, not a failure.
	std::string left_alone;
};

struct GcOptions {
	bool dry_run = false;
	bool force_orphans = false;
};

struct GcReport {
	GcOptions options;
	std::vector<GcEntry> records;
	std::vector<Unreadable> unreadable; // never removed: nothing in them can be trusted
	std::vector<Orphan> orphans;
};

GcReport run_gc(const Config &config, const GcOptions &options);
std::string format_gc(const GcReport &report);
// Nothing failed to be removed.
bool gc_ok(const GcReport &report);

} // namespace vmmcg::ctl
