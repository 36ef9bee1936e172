// `kill --all` of a split container on cgroup v2. runc before 1.2 (and crun 1.8) signal every process of
// the container by reading cgroup.procs of S and of each cgroup below it, which a threaded cgroup refuses
// (opencontainers/runc#3821): the kill fails on S/vcpu and S/overhead. Before it execs the runtime, the
// wrapper undoes the split of such a container as poststop would, so that the runtime finds the plain
// layout.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vmmcg::runtime {

// The container id of `kill --all ID [SIGNAL]` (also `-a`, Go's `-all`, `--all=true`), from the arguments
// that follow `kill`. std::nullopt for a kill without --all, and for crun's `--regex` (the id is a pattern).
std::optional<std::string> kill_all_target(std::span<const std::string_view> command_args);

struct Collapse {
	std::size_t collapsed = 0; // records of the id whose v2 split was undone
	std::size_t failures = 0;  // removals or restores that failed (logged)
};

// Every record in record_dir of container id (any bundle: kill names no bundle) whose layout is v2's
// threaded children: its settler or watcher stopped, the VMM's threads back in S, S/vcpu and S/overhead
// removed, S's values restored, the record removed (clean_up in cleanup.h, what poststop does; poststop
// then finds no record and has nothing to do). Other records, and v1 layouts, are left alone.
Collapse collapse_for_kill_all(const std::string &record_dir, const std::string &id);

} // namespace vmmcg::runtime
