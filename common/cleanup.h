// Removing everything of one container instance: what poststop does, what createRuntime does to a stale
// instance of its name, and what `vmm-cgroupctl gc` does to containers that are gone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "procfs.h"
#include "record.h"

namespace vmmcg {

// Ends the settler (or watcher) of a record, if it still runs: it would place threads while the cgroups
// are removed.
void stop_settler(const std::optional<ProcessRef> &settler);

// The container of a record is gone: its process is dead and the runtime has removed S (in every
// hierarchy, on v1). False where that cannot be told (a mount that cannot be opened).
bool container_gone(const Record &record);

// The settler, the cgroups the record lists (only those: nothing of another instance), the record itself.
// Keeps going after a failure; returns the number of failures.
std::size_t clean_up(const std::string &record_dir, Record &record);

} // namespace vmmcg
