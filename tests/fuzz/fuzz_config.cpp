// fuzz_config: vmmcg::parse_config, then vmmcg::apply_annotations (common/config.h).
//
// Input: <configuration JSON> [ NUL <annotations> ]
//   annotations: one per line, "key=value" (no '=': empty value). A key without a '.' is a project key and
//   gets the "io.vmm-cgroup-hooks." prefix ("mode=split", "qmp-socket=/run/qmp.sock", "enable=true"); a key
//   with a '.' is taken as it is ("org.example.x=1"). Values may hold any byte but '\n'.
//
// The annotations are applied twice: to the parsed configuration when it parses, and to a permissive one
// (every overridable key allowed) so that the annotation path is exercised whatever the JSON part is.
// InputError is the documented refusal; anything else is a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "config.h"
#include "errors.h"
#include "fuzz_check.h"
#include "paths.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

using vmmcg::fuzz::check;

std::map<std::string, std::string> decode_annotations(std::string_view text)
{
	std::map<std::string, std::string> out;
	while (!text.empty()) {
		std::size_t eol = text.find('\n');
		std::string_view line = text.substr(0, eol);
		text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
		std::size_t eq = line.find('=');
		std::string key(line.substr(0, eq));
		std::string value(eq == std::string_view::npos ? std::string_view{} : line.substr(eq + 1));
		if (key.find('.') == std::string::npos)
			key = std::string(vmmcg::annotation_prefix) + key;
		out.insert_or_assign(std::move(key), std::move(value));
	}
	return out;
}

bool is_list(std::string_view text)
{
	return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
		return (c >= '0' && c <= '9') || c == ',' || c == '-';
	});
}

bool is_socket_path(const std::string &path)
{
	return vmmcg::is_clean_absolute(path) && path != "/" && path.size() < 108;
}

// What README.md promises of a configuration that was accepted.
void check_config(const vmmcg::Config &config)
{
	static const std::set<std::string> controllers = {"cpu", "cpuacct", "cpuset"};
	static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
	static const std::set<std::string> overridable = {"mode", "qmp-socket"};

	check(vmmcg::is_clean_absolute(config.overhead_root) && config.overhead_root != "/",
	      "overhead_root is a clean absolute path other than /", config.overhead_root);
	check(!config.overhead_controllers.empty(), "overhead_controllers is not empty");
	for (const auto &name : config.overhead_controllers)
		check(controllers.contains(name), "overhead_controllers are cpu, cpuacct or cpuset", name);
	check(!config.vmm_names.empty(), "vmm_names is not empty");
	for (const auto &name : config.vmm_names)
		check(!name.empty(), "vmm_names are not empty");
	check(!config.vcpu_thread_patterns.empty(), "vcpu_thread_patterns is not empty");
	for (const auto &pattern : config.vcpu_thread_patterns) {
		std::size_t at = pattern.find("{n}");
		check(at != std::string::npos && pattern.find("{n}", at + 1) == std::string::npos,
		      "a vCPU pattern holds {n} exactly once", pattern);
	}
	check(config.vmm_search_depth <= 16, "vmm_search_depth <= 16");
	check(config.qmp_timeout_ms <= 10000, "qmp_timeout_ms <= 10000");
	check(config.poststart_budget_ms <= 5000, "poststart_budget_ms <= 5000");
	check(config.settle_timeout_ms <= 600000, "settle_timeout_ms <= 600000");
	check(config.settle_quiet_ms <= 10000, "settle_quiet_ms in 0..10000");
	check(vmmcg::is_clean_absolute(config.record_dir) && config.record_dir != "/",
	      "record_dir is a clean absolute path other than /", config.record_dir);
	check(levels.contains(config.log.level), "log_level is a known level", config.log.level);
	for (const auto &key : config.allowed_annotations)
		check(overridable.contains(key), "allowed_annotations are mode or qmp-socket", key);
	if (config.qmp_socket)
		check(is_socket_path(*config.qmp_socket), "qmp_socket is a clean absolute path < 108 bytes",
		      *config.qmp_socket);

	const vmmcg::CpuLimits &limits = config.overhead_limits;
	if (limits.shares)
		check(*limits.shares >= 2 && *limits.shares <= 262144, "cpu_shares in 2..262144");
	if (limits.quota_us)
		check(*limits.quota_us == -1 ||
			      (*limits.quota_us >= 1000 && *limits.quota_us <= INT64_MAX / 1000),
		      "cpu_quota_us is -1 or in 1000..INT64_MAX/1000");
	if (limits.period_us)
		check(*limits.period_us >= 1000 && *limits.period_us <= 1000000,
		      "cpu_period_us in 1000..1000000");
	if (limits.cpus)
		check(is_list(*limits.cpus), "cpuset_cpus is a CPU list", *limits.cpus);
	if (limits.mems)
		check(is_list(*limits.mems), "cpuset_mems is a node list", *limits.mems);
}

void check_apply(vmmcg::Config config, const std::map<std::string, std::string> &annotations)
{
	const vmmcg::Config before = config;
	std::vector<vmmcg::AnnotationOutcome> outcomes;
	try {
		outcomes = vmmcg::apply_annotations(config, annotations);
	} catch (const vmmcg::InputError &) {
		return;
	}
	bool mode_applied = false, socket_applied = false;
	for (const auto &outcome : outcomes) {
		auto it = annotations.find(outcome.key);
		check(it != annotations.end() && it->second == outcome.value,
		      "an outcome reports a given annotation", outcome.key);
		check(outcome.key.starts_with(vmmcg::annotation_prefix) &&
			      outcome.key != vmmcg::enable_annotation,
		      "only io.vmm-cgroup-hooks.* annotations other than enable have outcomes", outcome.key);
		std::string key = outcome.key.substr(vmmcg::annotation_prefix.size());
		bool allowed = std::find(before.allowed_annotations.begin(), before.allowed_annotations.end(),
					 key) != before.allowed_annotations.end();
		check(outcome.applied == allowed, "an annotation is applied exactly when it is allowed",
		      outcome.key);
		check(outcome.applied || !outcome.reason.empty(), "a refusal says why", outcome.key);
		if (outcome.applied && key == "mode") {
			mode_applied = true;
			check(vmmcg::parse_mode(outcome.value) == config.mode,
			      "an applied mode is the configuration's", outcome.value);
		}
		if (outcome.applied && key == "qmp-socket") {
			socket_applied = true;
			check(config.qmp_socket == outcome.value,
			      "an applied qmp-socket is the configuration's", outcome.value);
		}
	}
	if (!mode_applied)
		check(config.mode == before.mode, "mode changes only through an applied annotation");
	if (!socket_applied)
		check(config.qmp_socket == before.qmp_socket,
		      "qmp_socket changes only through an applied annotation");
	if (config.qmp_socket)
		check(is_socket_path(*config.qmp_socket), "qmp_socket is a clean absolute path < 108 bytes",
		      *config.qmp_socket);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	std::string_view text = vmmcg::fuzz::as_text(data, size);
	if (text.size() > vmmcg::max_config_size)
		return -1;
	std::size_t nul = text.find('\0');
	std::string_view json = text.substr(0, nul);
	auto annotations =
		decode_annotations(nul == std::string_view::npos ? std::string_view{} : text.substr(nul + 1));

	try {
		vmmcg::Config config = vmmcg::parse_config(json);
		check_config(config);
		check_apply(config, annotations);
	} catch (const vmmcg::InputError &) {
	}

	vmmcg::Config permissive;
	permissive.allowed_annotations = {"mode", "qmp-socket"};
	check_apply(permissive, annotations);
	return 0;
}
