// The record of one container: what createRuntime created and what poststart placed, written atomically
// (temp file + rename) to <record_dir>/<id>.json. poststart and poststop read it; so can an operator.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "discovery.h"
#include "layout.h"

namespace vmmcg {

struct Record {
	std::string id;
	Layout layout;
	// Cgroups createRuntime found already there (adopted, e.g. after a crash): removed like created ones,
	// but a failed createRuntime does not roll them back.
	std::vector<std::string> adopted;
	// v2: controllers enabled in S's subtree_control by createRuntime, and S's values before the split.
	std::vector<std::string> enabled;
	std::map<std::string, std::string> saved;
	bool relaxed = false; // S's cpu.max was lifted (after the vCPUs were placed)
	// The QMP socket in effect for this container (configuration or allowed annotation, at
	// createRuntime).
	std::optional<std::string> qmp_socket;
	std::optional<ProcessRef> vmm;
	std::vector<pid_t> vcpus;
	std::string vcpu_source; // "thread-names"
	std::optional<ProcessRef> settler;
};

std::string record_path(const std::string &dir, const std::string &id);

// Creates dir (0700) when missing. Throws std::system_error with the path.
void write_record(const std::string &dir, const Record &record);

// std::nullopt when there is no record. Throws InputError when it is unreadable or malformed.
std::optional<Record> read_record(const std::string &dir, const std::string &id);

// Removes the record and any temp file a killed writer left. ENOENT counts as done.
std::error_code remove_record(const std::string &dir, const std::string &id);

std::string record_to_json(const Record &record);
Record record_from_json(const std::string &text);

} // namespace vmmcg
