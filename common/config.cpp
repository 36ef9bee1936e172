#include "config.h"

#include <algorithm>
#include <set>

#include "errors.h"
#include "io.h"
#include "json_fields.h"
#include "paths.h"
#include "schema.h"
#include "text.h"

namespace vmmcg {

namespace {

constexpr std::string_view what = "configuration";

// A socket path inside the VMM's root: absolute, no "." or ".." components, bounded like sun_path.
bool is_socket_path(const std::string &path)
{
	return is_clean_absolute(path) && path != "/" && path.size() < 108;
}

// A value from a closed set: "'x' is not one of a, b, c".
std::string one_of(const Field &field, const std::vector<std::string_view> &allowed)
{
	std::string value = field.string();
	if (std::find(allowed.begin(), allowed.end(), value) != allowed.end())
		return value;
	std::string list;
	for (auto name : allowed)
		list += (list.empty() ? "" : ", ") + std::string(name);
	field.fail("'" + printable(value) + "' is not one of " + list);
}

unsigned bounded(const Field &field, unsigned max)
{
	return static_cast<unsigned>(field.non_negative(max));
}

unsigned bounded(const Field &field, unsigned min, unsigned max)
{
	unsigned value = bounded(field, max);
	if (value < min)
		field.fail("must be at least " + std::to_string(min));
	return value;
}

std::string cpu_list(const Field &field, const char *kind)
{
	std::string list = field.string();
	if (!is_cpu_list(list))
		field.fail("'" + printable(list) + "' is not a " + kind + " list");
	return list;
}

const Schema<CpuLimits, 5> limit_keys = {{
	{"cpu_shares", Presence::not_null,
	 [](const Field &f, CpuLimits &l) {
		 l.shares = f.non_negative(262144);
		 if (*l.shares < 2)
			 f.fail("must be at least 2");
	 }},
	{"cpu_quota_us", Presence::not_null,
	 [](const Field &f, CpuLimits &l) {
		 l.quota_us = f.integer(-1, INT64_MAX / 1000);
		 if (*l.quota_us != -1 && *l.quota_us < 1000)
			 f.fail("must be -1 or at least 1000");
	 }},
	{"cpu_period_us", Presence::not_null,
	 [](const Field &f, CpuLimits &l) {
		 l.period_us = f.non_negative(1000000);
		 if (*l.period_us < 1000)
			 f.fail("must be at least 1000");
	 }},
	{"cpuset_cpus", Presence::not_null,
	 [](const Field &f, CpuLimits &l) { l.cpus = cpu_list(f, "CPU"); }},
	{"cpuset_mems", Presence::not_null,
	 [](const Field &f, CpuLimits &l) { l.mems = cpu_list(f, "node"); }},
}};

std::string overhead_root(const Field &field)
{
	std::string text = field.string();
	std::string path = text.starts_with('/') ? text : "/" + text;
	if (!is_clean_absolute(path) || path == "/")
		field.fail("'" + printable(text) +
			   "' must be a cgroup path below the root, without '.' or '..'");
	return path;
}

std::vector<std::string> patterns(const Field &field)
{
	std::vector<std::string> list = field.strings(false);
	for (const auto &pattern : list) {
		std::size_t at = pattern.find("{n}");
		if (at == std::string::npos || pattern.find("{n}", at + 1) != std::string::npos)
			field.fail("'" + printable(pattern) + "' must contain '{n}' exactly once");
	}
	return list;
}

std::vector<std::string> names_in(const Field &field, bool allow_empty,
				  const std::vector<std::string_view> &allowed)
{
	std::vector<std::string> list = field.strings(allow_empty);
	for (const auto &name : list) {
		const nlohmann::json value = name;
		one_of(Field(value, what, field.key()), allowed);
	}
	return list;
}

std::string socket_path(const Field &field)
{
	std::string path = field.string();
	if (!is_socket_path(path))
		field.fail("'" + printable(path) + "' is not a clean absolute path of at most 107 bytes");
	return path;
}

std::string record_dir(const Field &field)
{
	std::string dir = field.string();
	if (!is_clean_absolute(dir) || dir == "/")
		field.fail("'" + printable(dir) + "' is not a clean absolute path");
	return dir;
}

// Annotation keys a node owner may allow (io.vmm-cgroup-hooks.<key>).
const std::vector<std::string_view> overridable = {"mode", "qmp-socket"};

// Every key of the configuration file, once: how it is read and checked.
const Schema<Config, 26> config_keys = {{
	{"mode", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.mode = *parse_mode(one_of(f, {"split", "sandbox-only"}));
	 }},
	{"opt_in", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.opt_in = one_of(f, {"runtime", "annotation"}) == "annotation" ? OptIn::annotation
										 : OptIn::runtime;
	 }},
	{"watch_vmm", Presence::not_null, [](const Field &f, Config &c) { c.watch_vmm = f.boolean(); }},
	{"launcher_names", Presence::not_null,
	 [](const Field &f, Config &c) { c.launcher_names = f.strings(true); }},
	{"max_settlers", Presence::not_null,
	 [](const Field &f, Config &c) { c.max_settlers = bounded(f, 1, 65536); }},
	{"overhead_parent", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.overhead_parent = one_of(f, {"sandbox", "root"}) == "root" ? OverheadParent::root
									      : OverheadParent::sandbox;
	 }},
	{"overhead_cap_percent", Presence::not_null,
	 [](const Field &f, Config &c) { c.overhead_cap_percent = bounded(f, 1000); }},
	{"overhead_cap_min_millicpus", Presence::not_null,
	 [](const Field &f, Config &c) { c.overhead_cap_min_millicpus = bounded(f, 1000000); }},
	{"vcpu_proof", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.vcpu_proof = one_of(f, {"kvm", "names"}) == "kvm" ? VcpuProof::kvm : VcpuProof::names;
	 }},
	{"max_vmm_threads", Presence::not_null,
	 [](const Field &f, Config &c) { c.max_vmm_threads = bounded(f, 1, 65536); }},
	{"overhead_root", Presence::not_null,
	 [](const Field &f, Config &c) { c.overhead_root = overhead_root(f); }},
	{"overhead_controllers", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.overhead_controllers = names_in(f, false, {"cpu", "cpuacct", "cpuset"});
	 }},
	{"overhead_limits", Presence::not_null,
	 [](const Field &f, Config &c) {
		 read_object(f.object(), what, f.key(), c.overhead_limits, limit_keys);
	 }},
	{"vmm_names", Presence::not_null, [](const Field &f, Config &c) { c.vmm_names = f.strings(false); }},
	{"vcpu_thread_patterns", Presence::not_null,
	 [](const Field &f, Config &c) { c.vcpu_thread_patterns = patterns(f); }},
	{"vmm_search_depth", Presence::not_null,
	 [](const Field &f, Config &c) { c.vmm_search_depth = bounded(f, 16); }},
	{"qmp_socket", Presence::not_null, [](const Field &f, Config &c) { c.qmp_socket = socket_path(f); }},
	{"qmp_timeout_ms", Presence::not_null,
	 [](const Field &f, Config &c) { c.qmp_timeout_ms = bounded(f, 10000); }},
	{"poststart_budget_ms", Presence::not_null,
	 [](const Field &f, Config &c) { c.poststart_budget_ms = bounded(f, 5000); }},
	{"settle_timeout_ms", Presence::not_null,
	 [](const Field &f, Config &c) { c.settle_timeout_ms = bounded(f, 600000); }},
	{"settle_quiet_ms", Presence::not_null,
	 [](const Field &f, Config &c) { c.settle_quiet_ms = bounded(f, 10000); }},
	{"record_dir", Presence::not_null, [](const Field &f, Config &c) { c.record_dir = record_dir(f); }},
	{"log_level", Presence::not_null,
	 [](const Field &f, Config &c) {
		 c.log.level = one_of(f, {"trace", "debug", "info", "warn", "error", "off"});
	 }},
	{"log_syslog", Presence::not_null, [](const Field &f, Config &c) { c.log.syslog = f.boolean(); }},
	{"log_stderr", Presence::not_null,
	 [](const Field &f, Config &c) { c.log.stderr_sink = f.boolean(); }},
	{"allowed_annotations", Presence::not_null,
	 [](const Field &f, Config &c) { c.allowed_annotations = names_in(f, true, overridable); }},
}};

} // namespace

std::string_view to_string(Mode mode)
{
	return mode == Mode::split ? "split" : "sandbox-only";
}

std::optional<Mode> parse_mode(std::string_view text)
{
	if (text == "split")
		return Mode::split;
	if (text == "sandbox-only")
		return Mode::sandbox_only;
	return std::nullopt;
}

bool is_cpu_list(std::string_view text)
{
	if (text.empty())
		return false;
	for (std::string_view range : split(text, ',')) {
		std::size_t dash = range.find('-');
		auto first = to_number<unsigned>(range.substr(0, dash));
		auto last =
			dash == std::string_view::npos ? first : to_number<unsigned>(range.substr(dash + 1));
		if (!first || !last || *first > *last)
			return false;
	}
	return true;
}

Config parse_config(std::string_view json)
{
	nlohmann::json doc = parse_json_object(json, what);
	Config config;
	read_object(doc, what, "", config, config_keys);
	return config;
}

std::vector<std::string_view> config_key_names()
{
	std::vector<std::string_view> names;
	for (const auto &spec : config_keys)
		names.push_back(spec.key);
	return names;
}

Config load_config(const std::optional<std::string> &path, const std::string &default_path)
{
	const std::string &file = path ? *path : default_path;
	std::optional<std::string> text;
	try {
		text = read_input_file(file, max_config_size, !path);
	} catch (const InputError &e) {
		throw InputError("configuration " + std::string(e.what()));
	}
	if (!text)
		return Config{};
	try {
		return parse_config(*text);
	} catch (const InputError &e) {
		throw InputError(file + ": " + e.what());
	}
}

namespace {

// Applies one allowed annotation; a bad value throws InputError naming it.
void apply_annotation(Config &config, const std::string &name, const std::string &key,
		      const std::string &value)
{
	if (key == "mode") {
		auto mode = parse_mode(value);
		if (!mode)
			throw InputError("annotation '" + name + "': '" + printable(value) +
					 "' is not 'split' or 'sandbox-only'");
		config.mode = *mode;
	} else if (key == "qmp-socket") {
		if (!is_socket_path(value))
			throw InputError("annotation '" + name + "': '" + printable(value) +
					 "' is not a clean absolute path of at most 107 bytes");
		config.qmp_socket = value;
	}
}

} // namespace

std::vector<AnnotationOutcome> apply_annotations(Config &config,
						 const std::map<std::string, std::string> &annotations)
{
	std::vector<AnnotationOutcome> outcomes;
	for (const auto &[name, value] : annotations) {
		if (!name.starts_with(annotation_prefix) || name == enable_annotation)
			continue;
		std::string key = name.substr(annotation_prefix.size());
		auto &allowed = config.allowed_annotations;
		if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
			outcomes.push_back(
				{name, value, false, "not in the configuration's allowed_annotations"});
			continue;
		}
		apply_annotation(config, name, key, value);
		outcomes.push_back({name, value, true, {}});
	}
	return outcomes;
}

} // namespace vmmcg
