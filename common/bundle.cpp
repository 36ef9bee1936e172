#include "bundle.h"

#include <system_error>

#include "errors.h"
#include "io.h"
#include "json_fields.h"
#include "paths.h"
#include "text.h"

namespace vmmcg {

namespace {

constexpr std::string_view what = "config.json";

// A systemd unit component: no '/', not empty where systemd requires it.
bool is_unit_part(std::string_view part)
{
	return part.find('/') == std::string_view::npos && part.find('\0') == std::string_view::npos;
}

// A pid entry without a path is a new namespace, the container's own; with a path it joins one another
// process made, which outlives this container's init (runc 1.1 and containerd's shim read it so too).
bool has_own_pid_namespace(const nlohmann::json &linux)
{
	auto namespaces = find_field(linux, "namespaces", what);
	if (!namespaces)
		return false;
	for (std::size_t i = 0; i < namespaces->list().size(); ++i) {
		auto entry = namespaces->item(i);
		if (auto type = entry.find("type"); !type || type->string() != "pid")
			continue;
		auto path = entry.find("path");
		return !path || path->string().empty();
	}
	return false;
}

} // namespace

CgroupsPath parse_cgroups_path(std::string_view text)
{
	CgroupsPath out;
	if (text.empty())
		return out;
	if (text.find(':') != std::string_view::npos) {
		std::size_t first = text.find(':');
		std::size_t second = text.find(':', first + 1);
		if (second == std::string_view::npos || text.find(':', second + 1) != std::string_view::npos)
			throw InputError("config.json: field 'linux.cgroupsPath': '" + printable(text) +
					 "' is not of the systemd form slice:prefix:name");
		out.kind = CgroupsPath::Kind::systemd;
		out.slice = text.substr(0, first);
		out.prefix = text.substr(first + 1, second - first - 1);
		out.name = text.substr(second + 1);
		if (!is_unit_part(out.slice) || !is_unit_part(out.prefix) || !is_unit_part(out.name) ||
		    out.name.empty() || (!out.slice.empty() && !out.slice.ends_with(".slice")))
			throw InputError("config.json: field 'linux.cgroupsPath': '" + printable(text) +
					 "' is not of the systemd form slice:prefix:name");
		return out;
	}
	bool absolute = text.front() == '/';
	std::string as_absolute = absolute ? std::string(text) : "/" + std::string(text);
	if (!is_clean_absolute(as_absolute) || as_absolute == "/")
		throw InputError("config.json: field 'linux.cgroupsPath': '" + printable(text) +
				 "' has an empty, '.' or '..' component");
	out.kind = absolute ? CgroupsPath::Kind::absolute : CgroupsPath::Kind::relative;
	out.path = std::string(text);
	return out;
}

BundleConfig parse_bundle_config(std::string_view json)
{
	nlohmann::json doc = parse_json_object(json, what);
	BundleConfig config;
	config.annotations = get_string_map(doc, "annotations", what);
	if (const nlohmann::json *process = get_object(doc, "process", what))
		if (auto args = find_field(*process, "args", what); args && !args->list().empty()) {
			for (std::size_t i = 0; i < args->list().size(); ++i)
				config.args.push_back(args->item(i).string());
			config.program = config.args.front();
		}
	if (const nlohmann::json *linux = get_object(doc, "linux", what)) {
		config.cgroups_path =
			parse_cgroups_path(get_string(*linux, "cgroupsPath", what).value_or(""));
		config.shared_pid = !has_own_pid_namespace(*linux);
	}
	return config;
}

BundleConfig read_bundle_config(const std::string &bundle_dir)
{
	return parse_bundle_config(
		*read_input_file(join_path(bundle_dir, "config.json"), max_bundle_config_size, false));
}

} // namespace vmmcg
