#include "config.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <system_error>

#include "errors.h"
#include "io.h"
#include "json_fields.h"
#include "paths.h"

namespace vmmcg {

namespace {

constexpr const char *what = "configuration";

// Annotation keys a node owner may allow, with the configuration key each overrides.
const std::set<std::string, std::less<>> overridable = {"mode", "qmp-socket"};

// A socket path inside the VMM's root: absolute, no "." or ".." components, bounded like sun_path.
bool is_socket_path(const std::string &path)
{
	return is_clean_absolute(path) && path != "/" && path.size() < 108;
}

const std::set<std::string, std::less<>> known_controllers = {"cpu", "cpuacct", "cpuset"};

std::vector<std::string> get_string_list(const nlohmann::json &doc, const char *key, bool allow_empty)
{
	auto it = doc.find(key);
	if (!it->is_array())
		throw InputError(std::string(what) + ": field '" + key + "': must be a list of strings");
	std::vector<std::string> out;
	for (const auto &item : *it) {
		if (!item.is_string() || item.get_ref<const std::string &>().empty())
			throw InputError(std::string(what) + ": field '" + key +
					 "': must be a list of non-empty strings");
		out.push_back(item.get<std::string>());
	}
	if (out.empty() && !allow_empty)
		throw InputError(std::string(what) + ": field '" + key + "': must not be empty");
	return out;
}

// A key that is present must have a value: null is refused like any other wrong type.
template <typename T>
T need(std::optional<T> value, const char *key)
{
	if (!value)
		throw InputError(std::string(what) + ": field '" + key + "': must not be null");
	return *value;
}

unsigned get_bounded(const nlohmann::json &doc, const char *key, unsigned max)
{
	return static_cast<unsigned>(need(get_unsigned(doc, key, what, max), key));
}

void check_pattern(const std::string &pattern)
{
	std::size_t at = pattern.find("{n}");
	if (at == std::string::npos || pattern.find("{n}", at + 1) != std::string::npos)
		throw InputError(std::string(what) + ": field 'vcpu_thread_patterns': '" + pattern +
				 "' must contain '{n}' exactly once");
}

// A cpuset list as the kernel takes it: comma-separated "N" or "N-M" with N <= M ("0-3,8,10-11").
bool is_cpu_list(std::string_view text)
{
	auto number = [](std::string_view digits) -> std::optional<unsigned> {
		unsigned value = 0;
		auto [ptr, err] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
		if (digits.empty() || err != std::errc() || ptr != digits.data() + digits.size())
			return std::nullopt;
		return value;
	};
	if (text.empty())
		return false;
	while (true) {
		std::size_t comma = text.find(',');
		std::string_view range = text.substr(0, comma);
		std::size_t dash = range.find('-');
		auto first = number(range.substr(0, dash));
		auto last = dash == std::string_view::npos ? first : number(range.substr(dash + 1));
		if (!first || !last || *first > *last)
			return false;
		if (comma == std::string_view::npos)
			return true;
		text.remove_prefix(comma + 1);
	}
}

OverheadLimits parse_limits(const nlohmann::json &node)
{
	const std::string where = "configuration: overhead_limits";
	OverheadLimits limits;
	for (auto &[key, value] : node.items()) {
		(void)value;
		if (key != "cpu_shares" && key != "cpu_quota_us" && key != "cpu_period_us" &&
		    key != "cpuset_cpus" && key != "cpuset_mems")
			throw InputError(where + ": unknown field '" + key + "'");
	}
	limits.cpu_shares = get_unsigned(node, "cpu_shares", where, 262144);
	limits.cpu_quota_us = get_integer(node, "cpu_quota_us", where, -1, INT64_MAX / 1000);
	limits.cpu_period_us = get_unsigned(node, "cpu_period_us", where, 1000000);
	limits.cpuset_cpus = get_string(node, "cpuset_cpus", where);
	limits.cpuset_mems = get_string(node, "cpuset_mems", where);
	if (limits.cpu_shares && *limits.cpu_shares < 2)
		throw InputError(where + ": field 'cpu_shares': must be at least 2");
	if (limits.cpu_quota_us && *limits.cpu_quota_us != -1 && *limits.cpu_quota_us < 1000)
		throw InputError(where + ": field 'cpu_quota_us': must be -1 or at least 1000");
	if (limits.cpu_period_us && *limits.cpu_period_us < 1000)
		throw InputError(where + ": field 'cpu_period_us': must be at least 1000");
	if (limits.cpuset_cpus && !is_cpu_list(*limits.cpuset_cpus))
		throw InputError(where + ": field 'cpuset_cpus': '" + *limits.cpuset_cpus +
				 "' is not a CPU list");
	if (limits.cpuset_mems && !is_cpu_list(*limits.cpuset_mems))
		throw InputError(where + ": field 'cpuset_mems': '" + *limits.cpuset_mems +
				 "' is not a node list");
	return limits;
}

std::string normalize_overhead_root(const std::string &text)
{
	std::string path = text.starts_with('/') ? text : "/" + text;
	if (!is_clean_absolute(path) || path == "/")
		throw InputError(std::string(what) + ": field 'overhead_root': '" + text +
				 "' must be a cgroup path below the root, without '.' or '..'");
	return path;
}

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

Config parse_config(std::string_view json)
{
	nlohmann::json doc = parse_json_object(json, what);
	Config config;
	for (auto &[key, value] : doc.items()) {
		(void)value;
		if (key == "mode") {
			auto text = need(get_string(doc, "mode", what), "mode");
			auto mode = parse_mode(text);
			if (!mode)
				throw InputError("configuration: field 'mode': '" + text +
						 "' is not 'split' or 'sandbox-only'");
			config.mode = *mode;
		} else if (key == "overhead_root") {
			config.overhead_root = normalize_overhead_root(
				need(get_string(doc, "overhead_root", what), "overhead_root"));
		} else if (key == "overhead_controllers") {
			config.overhead_controllers = get_string_list(doc, "overhead_controllers", false);
			for (const auto &name : config.overhead_controllers)
				if (!known_controllers.contains(name))
					throw InputError("configuration: field 'overhead_controllers': '" +
							 name + "' is not one of cpu, cpuacct, cpuset");
		} else if (key == "overhead_limits") {
			const nlohmann::json *limits = get_object(doc, "overhead_limits", what);
			if (!limits)
				throw InputError("configuration: field 'overhead_limits': must not be null");
			config.overhead_limits = parse_limits(*limits);
		} else if (key == "vmm_names") {
			config.vmm_names = get_string_list(doc, "vmm_names", false);
		} else if (key == "vcpu_thread_patterns") {
			config.vcpu_thread_patterns = get_string_list(doc, "vcpu_thread_patterns", false);
			std::for_each(config.vcpu_thread_patterns.begin(), config.vcpu_thread_patterns.end(),
				      check_pattern);
		} else if (key == "vmm_search_depth") {
			config.vmm_search_depth = get_bounded(doc, "vmm_search_depth", 16);
		} else if (key == "qmp_socket") {
			config.qmp_socket = need(get_string(doc, "qmp_socket", what), "qmp_socket");
			if (!is_socket_path(*config.qmp_socket))
				throw InputError("configuration: field 'qmp_socket': '" + *config.qmp_socket +
						 "' is not a clean absolute path of at most 107 bytes");
		} else if (key == "qmp_timeout_ms") {
			config.qmp_timeout_ms = get_bounded(doc, "qmp_timeout_ms", 10000);
		} else if (key == "poststart_budget_ms") {
			config.poststart_budget_ms = get_bounded(doc, "poststart_budget_ms", 5000);
		} else if (key == "settle_timeout_ms") {
			config.settle_timeout_ms = get_bounded(doc, "settle_timeout_ms", 600000);
		} else if (key == "settle_quiet_ms") {
			config.settle_quiet_ms = get_bounded(doc, "settle_quiet_ms", 10000);
		} else if (key == "record_dir") {
			config.record_dir = need(get_string(doc, "record_dir", what), "record_dir");
			if (!is_clean_absolute(config.record_dir) || config.record_dir == "/")
				throw InputError("configuration: field 'record_dir': '" + config.record_dir +
						 "' is not a clean absolute path");
		} else if (key == "log_level") {
			config.log_level = need(get_string(doc, "log_level", what), "log_level");
			static const std::set<std::string, std::less<>> levels = {"trace", "debug", "info",
										  "warn",  "error", "off"};
			if (!levels.contains(config.log_level))
				throw InputError("configuration: field 'log_level': '" + config.log_level +
						 "' is not one of trace, debug, info, warn, error, off");
		} else if (key == "log_syslog") {
			config.log_syslog = need(get_bool(doc, "log_syslog", what), "log_syslog");
		} else if (key == "log_stderr") {
			config.log_stderr = need(get_bool(doc, "log_stderr", what), "log_stderr");
		} else if (key == "allowed_annotations") {
			config.allowed_annotations = get_string_list(doc, "allowed_annotations", true);
			for (const auto &name : config.allowed_annotations)
				if (!overridable.contains(name))
					throw InputError("configuration: field 'allowed_annotations': '" +
							 name +
							 "' is not an annotation key that can be allowed "
							 "(mode, qmp-socket)");
		} else {
			throw InputError("configuration: unknown field '" + key + "'");
		}
	}
	return config;
}

Config load_config(const std::optional<std::string> &path, const std::string &default_path)
{
	const std::string &file = path ? *path : default_path;
	std::error_code ec;
	std::string text = read_file(file, max_config_size, ec);
	if (ec == std::errc::no_such_file_or_directory && !path)
		return Config{};
	if (ec == std::errc::file_too_large)
		throw InputError("configuration " + file + ": larger than " +
				 std::to_string(max_config_size) + " bytes");
	if (ec)
		throw InputError("configuration " + file + ": cannot be read: " + ec.message());
	try {
		return parse_config(text);
	} catch (const InputError &e) {
		throw InputError(file + ": " + e.what());
	}
}

std::vector<AnnotationOutcome> apply_annotations(Config &config,
						 const std::map<std::string, std::string> &annotations)
{
	std::vector<AnnotationOutcome> outcomes;
	for (const auto &[name, value] : annotations) {
		if (!name.starts_with(annotation_prefix) || name == enable_annotation)
			continue;
		std::string key = name.substr(annotation_prefix.size());
		bool allowed = std::find(config.allowed_annotations.begin(), config.allowed_annotations.end(),
					 key) != config.allowed_annotations.end();
		if (!allowed) {
			outcomes.push_back(
				{name, value, false, "not in the configuration's allowed_annotations"});
			continue;
		}
		if (key == "mode") {
			auto mode = parse_mode(value);
			if (!mode)
				throw InputError("annotation '" + name + "': '" + value +
						 "' is not 'split' or 'sandbox-only'");
			config.mode = *mode;
		} else if (key == "qmp-socket") {
			if (!is_socket_path(value))
				throw InputError("annotation '" + name + "': '" + value +
						 "' is not a clean absolute path of at most 107 bytes");
			config.qmp_socket = value;
		}
		outcomes.push_back({name, value, true, {}});
	}
	return outcomes;
}

} // namespace vmmcg
