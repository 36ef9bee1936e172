// The records of the containers the hooks manage, as the operator's command reads them: every file of the
// record directory (record.h record_names), and the ones a NAME|ID argument selects.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "record.h"

namespace vmmcg::ctl {

struct LoadedRecord {
	std::string name; // the file's name without ".json"
	std::string path;
	std::optional<Record> record; // absent when it could not be read
	std::string error;            // why
};

// Every record of the directory, sorted by name; a missing directory has none.
std::vector<LoadedRecord> load_records(const std::string &dir);

// Those a NAME|ID argument names: the instance name exactly, else the container id exactly, else the ids
// that start with it (podman's short ids). Unreadable records match by their file name only.
std::vector<LoadedRecord> select_records(const std::vector<LoadedRecord> &records, const std::string &target);

// Why `target` cannot name one container: it is neither an instance name nor an id, only the start of the
// ids of several containers. nullopt when it names one (or none: select_records says that). reconcile
// refuses such a target rather than moving threads of containers the operator did not mean.
std::optional<std::string> ambiguity(const std::vector<LoadedRecord> &records, const std::string &target);

} // namespace vmmcg::ctl
