// Removing everything of one container instance: what poststop does, what createRuntime does to a stale
// instance of its name, and what `vmm-cgroupctl gc` does to containers that are gone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "backend.h"
#include "procfs.h"
#include "record.h"

namespace vmmcg {

// Ends the settler (or watcher) of a record, if it still runs: it would place threads while the cgroups
// are removed.
void stop_settler(const std::optional<ProcessRef> &settler);

// Whether the runtime still has the container's sandbox cgroup S, as the record names it.
struct SandboxPresence {
	bool known = false;  // the record names S (split mode)
	bool exists = false; // S exists in at least one hierarchy
	// The first recorded mount that could not be opened as a cgroup file system: nothing can be told
	// there.
	std::string refused;
	// S is gone in every hierarchy, and that could be told everywhere.
	bool gone() const { return known && !exists && refused.empty(); }
};
SandboxPresence sandbox_presence(const Record &record);

// The container of a record is gone: its process is dead and the runtime has removed S (in every
// hierarchy, on v1). False where that cannot be told (a mount that cannot be opened).
bool container_gone(const Record &record);

// The settler, the cgroups the record lists (only those: nothing of another instance), the record itself.
// Keeps going after a failure; returns what was removed, what was removed already, and the failures.
Teardown clean_up(const std::string &record_dir, Record &record);

} // namespace vmmcg
