// Reading records of version 1, written before the record kept each cgroup version's part apart: one list
// of "targets" for both, with a "v2" flag, and the v2 state on the top level. Containers created before an
// upgrade are cleaned up with these.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "json_fields.h"
#include "paths.h"
#include "record.h"
#include "text.h"

namespace vmmcg {

namespace {

constexpr std::string_view what = "record";

std::string path_of(const Field &target, std::string_view key)
{
	std::string path = target.at(key).string();
	if (!is_clean_absolute(path))
		target.at(key).fail("'" + printable(path) + "' is not a clean absolute path");
	return path;
}

cgroup_v1::Hierarchy hierarchy_from(const Field &target)
{
	cgroup_v1::Hierarchy h;
	h.mount = path_of(target, "mount");
	std::string controllers = target.at("controllers").string();
	for (std::string_view name : split(controllers, ',')) {
		if (name != "cpu" && name != "cpuacct" && name != "cpuset")
			target.at("controllers")
				.fail("'" + printable(name) + "' is not a controller the hooks use");
		h.controllers.emplace_back(name);
	}
	h.proc_key = h.controllers.front();
	h.sandbox = path_of(target, "sandbox");
	h.overhead = path_of(target, "overhead");
	Field create = target.at("create");
	for (std::size_t i = 0; i < create.list().size(); ++i)
		if (create.item(i).at("shared").boolean())
			h.shared.push_back(path_of(create.item(i), "path"));
	if (h.overhead == "/")
		target.fail("overhead is the root cgroup");
	return h;
}

cgroup_v2::Layout v2_from(const Field &target, const nlohmann::json &doc)
{
	cgroup_v2::Layout l;
	l.mount = path_of(target, "mount");
	l.sandbox = path_of(target, "sandbox");
	l.enabled = need_field(doc, "enabled", what).strings(true);
	for (const auto &name : l.enabled)
		if (name != "cpu" && name != "cpuset")
			throw InputError("record: bad controller '" + printable(name) + "'");
	l.saved = need_field(doc, "saved", what).string_map();
	for (const auto &[file, value] : l.saved)
		if (file != "cpu.max")
			throw InputError("record: bad saved file '" + printable(file) + "'");
	l.relaxed = need_field(doc, "relaxed", what).boolean();
	return l;
}

std::optional<ProcessRef> process_from(const nlohmann::json &doc, std::string_view key)
{
	auto field = find_field(doc, key, what);
	if (!field)
		return std::nullopt;
	return ProcessRef{static_cast<pid_t>(field->at("pid").integer(1, 1 << 22)),
			  field->at("start_time").non_negative(UINT64_MAX)};
}

CgroupLayout cgroups_from(const nlohmann::json &doc)
{
	Field targets = need_field(doc, "targets", what);
	cgroup_v1::Layout v1;
	for (std::size_t i = 0; i < targets.list().size(); ++i) {
		Field target = targets.item(i);
		if (target.at("v2").boolean())
			return v2_from(target, doc);
		v1.hierarchies.push_back(hierarchy_from(target));
	}
	if (v1.hierarchies.empty())
		return {};
	return v1;
}

} // namespace

Record record_from_v1_json(const nlohmann::json &doc)
{
	Record record;
	Field id = need_field(doc, "id", what);
	record.id = id.string();
	if (!is_valid_container_id(record.id))
		id.fail("not a container id");
	record.name = record.id; // its file was <id>.json
	auto mode = parse_mode(need_field(doc, "mode", what).string());
	auto host = parse_host_mode(need_field(doc, "host", what).string());
	if (!mode || !host)
		throw InputError("record: bad mode or host");
	record.mode = *mode;
	record.host = *host;
	record.cgroups = cgroups_from(doc);
	if (auto socket = get_string(doc, "qmp_socket", what)) {
		if (!is_clean_absolute(*socket) || *socket == "/")
			throw InputError("record: field 'qmp_socket': not a clean absolute path");
		record.qmp_socket = *socket;
	}
	record.vmm = process_from(doc, "vmm");
	Field vcpus = need_field(doc, "vcpus", what);
	for (std::size_t i = 0; i < vcpus.list().size(); ++i)
		record.vcpus.push_back(static_cast<pid_t>(vcpus.item(i).integer(1, 1 << 22)));
	record.vcpu_source = need_field(doc, "vcpu_source", what).string();
	record.settler = process_from(doc, "settler");
	return record;
}

} // namespace vmmcg
