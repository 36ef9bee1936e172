// The record of one container: what createRuntime created and what poststart placed, written atomically
// (temp file + rename) to <record_dir>/<id>.json. poststart and poststop read it; so can an operator.
// Its fields are listed once, in record.cpp, for the writer and the reader.
#pragma once

#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.h"
#include "host.h"
#include "layout.h"
#include "procfs.h"

namespace vmmcg {

// Version 2 keeps each cgroup version's part apart ("v1" or "v2"); version 1 (one list of targets for
// both) is still read, so that containers created before an upgrade are cleaned up.
inline constexpr int record_version = 2;

struct Record {
	// createRuntime writes the record before it makes the first cgroup (creating), and again once every
	// cgroup is made (created): a createRuntime killed midway leaves what it intended, for poststop or
	// `vmm-cgroupctl gc` to remove.
	enum class Phase { creating, created };

	std::string id;
	std::string name;   // instance_name(id, bundle): the record's file name, and on v1 part of O's
	std::string bundle; // as the state gave it
	Phase phase = Phase::created;
	std::optional<ProcessRef> container; // the container's process at createRuntime
	Mode mode = Mode::split;
	HostMode host = HostMode::v1;
	CgroupLayout cgroups;
	// The QMP socket in effect for this container (configuration or allowed annotation, at
	// createRuntime).
	std::optional<std::string> qmp_socket;
	std::optional<ProcessRef> vmm;
	std::vector<pid_t> vcpus;
	std::string vcpu_source;           // "qmp", "thread-names", or "" before placement
	std::optional<ProcessRef> settler; // placing still (runc's poststart before exec, late vCPUs)
	// Once placed, the same process watches the VMM for as long as it runs: new threads (a hot-plugged
	// vCPU, a thread that names itself late) and changes of the container's CPU limit (watcher.h).
	std::optional<ProcessRef> watcher;
};

std::string record_path(const std::string &dir, const std::string &name);

// Writes <dir>/<record.name>.json, replacing it. Creates dir (0700) when missing. Throws std::system_error
// with the path.
void write_record(const std::string &dir, const Record &record);
// Rewrites the record only where it still is, in one step (RENAME_EXCHANGE): false, and nothing left, when
// it has been removed. The settler and the watcher write with this, so that a write of theirs racing
// poststop's removal can never bring the record back.
bool replace_record(const std::string &dir, const Record &record);
// The first write of a container's record: false, and nothing written, when one exists already (an
// instance of the same name is there, or a stale one: the caller decides).
bool create_record(const std::string &dir, const Record &record);

// std::nullopt when there is no record. Throws HostError when it is unreadable or malformed: the record is
// the host's own file, so a corrupt one is exit 1, not bad input. A record of version 1 (written before
// an upgrade, named <id>.json) is read when there is none of this name.
std::optional<Record> read_record(const std::string &dir, const std::string &name, const std::string &id);

// Removes the record and any temp file a killed writer left. ENOENT counts as done.
std::error_code remove_record(const std::string &dir, const std::string &name);

// Every record in dir, by file name (for the operator's command): unreadable ones are skipped.
std::vector<std::string> record_names(const std::string &dir);

std::string record_to_json(const Record &record);
// Throws InputError naming the field.
Record record_from_json(const std::string &text);
// The same for a parsed record of version 1 (record_v1.cpp).
Record record_from_v1_json(const nlohmann::json &doc);

} // namespace vmmcg
