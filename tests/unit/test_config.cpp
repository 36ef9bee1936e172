#include "config.h"

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;
using nlohmann::json;

namespace {

Config parse(const json &doc)
{
	return parse_config(doc.dump());
}

Config parse_one(const char *key, const json &value)
{
	return parse({{key, value}});
}

Config parse_limit(const char *key, const json &value)
{
	return parse({{"overhead_limits", {{key, value}}}});
}

void check_defaults(const Config &config)
{
	CHECK(config.mode == Mode::split);
	CHECK(config.overhead_root == "/vmm_overhead");
	CHECK(config.overhead_controllers == std::vector<std::string>{"cpu", "cpuset"});
	CHECK(config.overhead_parent == OverheadParent::sandbox);
	CHECK(config.opt_in == OptIn::runtime);
	CHECK(config.vcpu_proof == VcpuProof::kvm);
	CHECK(config.overhead_cap_percent == 25);
	CHECK(config.overhead_cap_min_millicpus == 250);
	CHECK(config.max_vmm_threads == 4096);
	CHECK(config.max_settlers == 256);
	CHECK(config.watch_vmm);
	CHECK_FALSE(config.overhead_limits.shares);
	CHECK_FALSE(config.overhead_limits.quota_us);
	CHECK_FALSE(config.overhead_limits.period_us);
	CHECK_FALSE(config.overhead_limits.cpus);
	CHECK_FALSE(config.overhead_limits.mems);
	CHECK(config.vmm_names == std::vector<std::string>{"qemu-system-*", "qemu-kvm", "cloud-hyperviso*",
							   "firecracker", "crosvm"});
	CHECK(config.vcpu_thread_patterns ==
	      std::vector<std::string>{"CPU {n}/KVM", "CPU {n}/TCG", "vcpu{n}", "fc_vcpu {n}"});
	CHECK(config.vmm_search_depth == 4);
	CHECK_FALSE(config.qmp_socket);
	CHECK(config.qmp_timeout_ms == 1000);
	CHECK(config.poststart_budget_ms == 200);
	CHECK(config.settle_timeout_ms == 60000);
	CHECK(config.settle_quiet_ms == 100);
	CHECK(config.record_dir == "/run/vmm-cgroup-hooks");
	CHECK(config.log.level == "info");
	CHECK(config.log.syslog);
	CHECK(config.log.stderr_sink);
	CHECK(config.allowed_annotations.empty());
}

} // namespace

TEST_SUITE("config")
{
	TEST_CASE("the keys of the hardening: opt_in, overhead_parent, the cap, vcpu_proof, the bounds")
	{
		CHECK(parse_one("opt_in", "annotation").opt_in == OptIn::annotation);
		CHECK(parse_one("opt_in", "runtime").opt_in == OptIn::runtime);
		CHECK_INPUT_ERROR(parse_one("opt_in", "any"), "'opt_in'");
		CHECK(parse_one("overhead_parent", "root").overhead_parent == OverheadParent::root);
		CHECK_INPUT_ERROR(parse_one("overhead_parent", "/x"), "'overhead_parent'");
		CHECK(parse_one("overhead_cap_percent", 0).overhead_cap_percent == 0);
		CHECK_INPUT_ERROR(parse_one("overhead_cap_percent", 1001), "'overhead_cap_percent'");
		CHECK(parse_one("overhead_cap_min_millicpus", 1000).overhead_cap_min_millicpus == 1000);
		CHECK(parse_one("vcpu_proof", "names").vcpu_proof == VcpuProof::names);
		CHECK_INPUT_ERROR(parse_one("vcpu_proof", "none"), "'vcpu_proof'");
		CHECK_INPUT_ERROR(parse_one("max_vmm_threads", 0), "'max_vmm_threads'");
		CHECK_INPUT_ERROR(parse_one("max_settlers", 0), "'max_settlers'");
		CHECK(parse_one("launcher_names", json::array()).launcher_names.empty());
	}

	TEST_CASE("defaults: no file, an empty object")
	{
		check_defaults(Config{});
		check_defaults(parse_config("{}"));
		check_defaults(parse_config(" { } \n"));
	}

	TEST_CASE("mode")
	{
		CHECK(parse_one("mode", "split").mode == Mode::split);
		CHECK(parse_one("mode", "sandbox-only").mode == Mode::sandbox_only);
		CHECK_INPUT_ERROR(parse_one("mode", "sandbox_only"), "'mode'");
		CHECK_INPUT_ERROR(parse_one("mode", "Split"), "'mode'");
		CHECK_INPUT_ERROR(parse_one("mode", ""), "'mode'");
		CHECK_INPUT_ERROR(parse_one("mode", 1), "'mode'");
		CHECK(to_string(Mode::split) == "split");
		CHECK(to_string(Mode::sandbox_only) == "sandbox-only");
		CHECK(parse_mode("split") == Mode::split);
		CHECK(parse_mode("sandbox-only") == Mode::sandbox_only);
		CHECK_FALSE(parse_mode("both"));
	}

	TEST_CASE("overhead_root: relative is made absolute, climbing is refused")
	{
		CHECK(parse_one("overhead_root", "/kata_overhead").overhead_root == "/kata_overhead");
		CHECK(parse_one("overhead_root", "kata_overhead").overhead_root == "/kata_overhead");
		CHECK(parse_one("overhead_root", "/a/b").overhead_root == "/a/b");
		for (const char *bad : {"", "/", "/a/../b", "..", "../x", "/a/.", "a//b", "/a/", "./a"}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_one("overhead_root", bad), "'overhead_root'");
		}
		CHECK_INPUT_ERROR(parse_one("overhead_root", 3), "'overhead_root'");
	}

	TEST_CASE("overhead_controllers")
	{
		CHECK(parse_one("overhead_controllers", {"cpu"}).overhead_controllers ==
		      std::vector<std::string>{"cpu"});
		CHECK(parse_one("overhead_controllers", {"cpuset", "cpu"}).overhead_controllers ==
		      std::vector<std::string>{"cpuset", "cpu"});
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", json::array()), "'overhead_controllers'");
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", {"memory"}), "'memory'");
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", {"cpu", "devices"}),
				  "'overhead_controllers'");
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", {""}), "'overhead_controllers'");
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", {1}), "'overhead_controllers'");
		CHECK_INPUT_ERROR(parse_one("overhead_controllers", "cpu"), "'overhead_controllers'");
	}

	TEST_CASE("overhead_limits: good values")
	{
		Config config = parse({{"overhead_limits",
					{{"cpu_shares", 512},
					 {"cpu_quota_us", 200000},
					 {"cpu_period_us", 100000},
					 {"cpuset_cpus", "0-1,4"},
					 {"cpuset_mems", "0"}}}});
		const CpuLimits &limits = config.overhead_limits;
		CHECK(limits.shares == 512u);
		CHECK(limits.quota_us == 200000);
		CHECK(limits.period_us == 100000u);
		CHECK(limits.cpus == "0-1,4");
		CHECK(limits.mems == "0");

		CHECK(parse_limit("cpu_shares", 2).overhead_limits.shares == 2u);
		CHECK(parse_limit("cpu_shares", 262144).overhead_limits.shares == 262144u);
		CHECK(parse_limit("cpu_quota_us", -1).overhead_limits.quota_us == -1);
		CHECK(parse_limit("cpu_quota_us", 1000).overhead_limits.quota_us == 1000);
		CHECK(parse_limit("cpu_period_us", 1000).overhead_limits.period_us == 1000u);
		CHECK(parse_limit("cpu_period_us", 1000000).overhead_limits.period_us == 1000000u);
		Config empty = parse_one("overhead_limits", json::object());
		CHECK_FALSE(empty.overhead_limits.shares);
		CHECK_FALSE(empty.overhead_limits.cpus);
	}

	TEST_CASE("overhead_limits: bad values name the field")
	{
		CHECK_INPUT_ERROR(parse_limit("cpu_shares", 1), "'overhead_limits.cpu_shares'");
		CHECK_INPUT_ERROR(parse_limit("cpu_shares", 0), "'overhead_limits.cpu_shares'");
		CHECK_INPUT_ERROR(parse_limit("cpu_shares", 262145), "'overhead_limits.cpu_shares'");
		CHECK_INPUT_ERROR(parse_limit("cpu_shares", -2), "'overhead_limits.cpu_shares'");
		CHECK_INPUT_ERROR(parse_limit("cpu_shares", "512"), "'overhead_limits.cpu_shares'");
		CHECK_INPUT_ERROR(parse_limit("cpu_quota_us", 0), "'overhead_limits.cpu_quota_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_quota_us", 999), "'overhead_limits.cpu_quota_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_quota_us", -2), "'overhead_limits.cpu_quota_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_quota_us", INT64_MAX), "'overhead_limits.cpu_quota_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_quota_us", 1.5), "'overhead_limits.cpu_quota_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_period_us", 999), "'overhead_limits.cpu_period_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_period_us", 1000001), "'overhead_limits.cpu_period_us'");
		CHECK_INPUT_ERROR(parse_limit("cpu_period_us", true), "'overhead_limits.cpu_period_us'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_cpus", ""), "'overhead_limits.cpuset_cpus'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_cpus", "0-3\n"), "'overhead_limits.cpuset_cpus'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_cpus", "all"), "'overhead_limits.cpuset_cpus'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_cpus", 0), "'overhead_limits.cpuset_cpus'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_mems", "0 1"), "'overhead_limits.cpuset_mems'");
		CHECK_INPUT_ERROR(parse_limit("cpuset_mems", json::array({0})),
				  "'overhead_limits.cpuset_mems'");
		CHECK_INPUT_ERROR(parse_limit("cpu_weight", 100), "'cpu_weight'");
		CHECK_INPUT_ERROR(parse_limit("cpu_weight", 100), "unknown");
		CHECK_INPUT_ERROR(parse_one("overhead_limits", json::array()), "'overhead_limits'");
		CHECK_INPUT_ERROR(parse_one("overhead_limits", "none"), "'overhead_limits'");
	}

	TEST_CASE("overhead_limits: CPU lists the kernel would refuse are refused here")
	{
		// is_cpu_list only checks the character set: these pass it, then cpuset.cpus refuses them
		// with EINVAL at createRuntime, a host error instead of a configuration error when the file
		// is loaded.
		for (const char *bad : {"-", "1-", "-1", "1--2", "0-1-2"}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_limit("cpuset_cpus", bad), "'overhead_limits.cpuset_cpus'");
			CHECK_INPUT_ERROR(parse_limit("cpuset_mems", bad), "'overhead_limits.cpuset_mems'");
		}
	}

	TEST_CASE("vmm_names")
	{
		CHECK(parse_one("vmm_names", {"my-vmm"}).vmm_names == std::vector<std::string>{"my-vmm"});
		CHECK_INPUT_ERROR(parse_one("vmm_names", json::array()), "'vmm_names'");
		CHECK_INPUT_ERROR(parse_one("vmm_names", {""}), "'vmm_names'");
		CHECK_INPUT_ERROR(parse_one("vmm_names", {"a", 2}), "'vmm_names'");
		CHECK_INPUT_ERROR(parse_one("vmm_names", "qemu"), "'vmm_names'");
	}

	TEST_CASE("vcpu_thread_patterns: '{n}' exactly once")
	{
		CHECK(parse_one("vcpu_thread_patterns", {"vcpu-{n}", "{n}"}).vcpu_thread_patterns ==
		      std::vector<std::string>{"vcpu-{n}", "{n}"});
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {"vcpu"}), "'vcpu'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {"vcpu{n}", "CPU {n}/{n}"}),
				  "'CPU {n}/{n}'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {"{n}{n}"}), "'vcpu_thread_patterns'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {"vcpu{N}"}), "'vcpu_thread_patterns'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", json::array()), "'vcpu_thread_patterns'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {""}), "'vcpu_thread_patterns'");
		CHECK_INPUT_ERROR(parse_one("vcpu_thread_patterns", {1}), "'vcpu_thread_patterns'");
	}

	TEST_CASE("bounded numbers")
	{
		struct Bound {
			const char *key;
			unsigned Config::*field;
			unsigned min, max;
		};
		const Bound bounds[] = {{"vmm_search_depth", &Config::vmm_search_depth, 0, 16},
					{"qmp_timeout_ms", &Config::qmp_timeout_ms, 0, 10000},
					{"poststart_budget_ms", &Config::poststart_budget_ms, 0, 5000},
					{"settle_timeout_ms", &Config::settle_timeout_ms, 0, 600000},
					{"settle_quiet_ms", &Config::settle_quiet_ms, 0, 10000}};
		for (const Bound &bound : bounds) {
			CAPTURE(bound.key);
			std::string name = std::string("'") + bound.key + "'";
			CHECK(parse_one(bound.key, bound.min).*bound.field == bound.min);
			CHECK(parse_one(bound.key, bound.max).*bound.field == bound.max);
			CHECK_INPUT_ERROR(parse_one(bound.key, bound.max + 1), name);
			if (bound.min > 0)
				CHECK_INPUT_ERROR(parse_one(bound.key, bound.min - 1), name);
			CHECK_INPUT_ERROR(parse_one(bound.key, -1), name);
			CHECK_INPUT_ERROR(parse_one(bound.key, 1.5), name);
			CHECK_INPUT_ERROR(parse_one(bound.key, "3"), name);
			CHECK_INPUT_ERROR(parse_one(bound.key, UINT64_MAX), name);
		}
	}

	TEST_CASE("qmp_socket")
	{
		CHECK(parse_one("qmp_socket", "/run/qmp.sock").qmp_socket == "/run/qmp.sock");
		std::string longest = "/" + std::string(106, 's');
		CHECK(parse_one("qmp_socket", longest).qmp_socket == longest);
		for (const std::string &bad :
		     std::vector<std::string>{"", "/", "qmp.sock", "/run/../qmp", "/run//qmp", "/run/qmp/",
					      "/" + std::string(107, 's')}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_one("qmp_socket", bad), "'qmp_socket'");
		}
		CHECK_INPUT_ERROR(parse_one("qmp_socket", 1), "'qmp_socket'");
	}

	TEST_CASE("record_dir")
	{
		CHECK(parse_one("record_dir", "/var/run/x").record_dir == "/var/run/x");
		for (const char *bad : {"", "/", "run/x", "/run/../x", "/run/x/"}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_one("record_dir", bad), "'record_dir'");
		}
		CHECK_INPUT_ERROR(parse_one("record_dir", false), "'record_dir'");
	}

	TEST_CASE("log_level, log_syslog, log_stderr")
	{
		for (const char *level : {"trace", "debug", "info", "warn", "error", "off"})
			CHECK(parse_one("log_level", level).log.level == level);
		CHECK_INPUT_ERROR(parse_one("log_level", "verbose"), "'log_level'");
		CHECK_INPUT_ERROR(parse_one("log_level", "INFO"), "'log_level'");
		CHECK_INPUT_ERROR(parse_one("log_level", 3), "'log_level'");
		CHECK_FALSE(parse_one("log_syslog", false).log.syslog);
		CHECK_FALSE(parse_one("log_stderr", false).log.stderr_sink);
		CHECK_INPUT_ERROR(parse_one("log_syslog", "false"), "'log_syslog'");
		CHECK_INPUT_ERROR(parse_one("log_stderr", 0), "'log_stderr'");
	}

	TEST_CASE("watch_vmm: a boolean, true by default")
	{
		CHECK(parse_config("{}").watch_vmm);
		CHECK(parse_one("watch_vmm", true).watch_vmm);
		CHECK_FALSE(parse_one("watch_vmm", false).watch_vmm);
		for (const json &value : {json("false"), json(0), json(1)}) {
			CAPTURE(value.dump());
			std::string message;
			CHECK(unit::catch_error<InputError>([&] { parse_one("watch_vmm", value); }, message));
			CHECK(message.find("'watch_vmm'") != std::string::npos);
			CHECK(message.find('\n') == std::string::npos);
		}
	}

	TEST_CASE("allowed_annotations")
	{
		CHECK(parse_one("allowed_annotations", json::array()).allowed_annotations.empty());
		CHECK(parse_one("allowed_annotations", {"mode", "qmp-socket"}).allowed_annotations ==
		      std::vector<std::string>{"mode", "qmp-socket"});
		CHECK_INPUT_ERROR(parse_one("allowed_annotations", {"mode", "overhead_root"}),
				  "'overhead_root'");
		CHECK_INPUT_ERROR(parse_one("allowed_annotations", {"enable"}), "'enable'");
		CHECK_INPUT_ERROR(parse_one("allowed_annotations", {"io.vmm-cgroup-hooks.mode"}),
				  "'allowed_annotations'");
		CHECK_INPUT_ERROR(parse_one("allowed_annotations", "mode"), "'allowed_annotations'");
	}

	TEST_CASE("null is refused for every key")
	{
		for (std::string_view name : config_key_names()) {
			std::string key(name);
			CAPTURE(key);
			CHECK_INPUT_ERROR(parse_one(key.c_str(), nullptr), "'" + key + "'");
		}
	}

	TEST_CASE("a wrong type is refused for every key")
	{
		for (std::string_view name : config_key_names()) {
			std::string key(name);
			CAPTURE(key);
			std::string quoted = "'" + key + "'";
			CHECK_INPUT_ERROR(parse_one(key.c_str(), json::array({json::object()})), quoted);
			if (key != "overhead_limits")
				CHECK_INPUT_ERROR(parse_one(key.c_str(), json::object()), quoted);
			if (key != "log_syslog" && key != "log_stderr" && key != "watch_vmm")
				CHECK_INPUT_ERROR(parse_one(key.c_str(), true), quoted);
		}
	}

	TEST_CASE("unknown keys are named")
	{
		CHECK_INPUT_ERROR(parse_one("Mode", "split"), "'Mode'");
		CHECK_INPUT_ERROR(parse({{"mode", "split"}, {"overhead-root", "/x"}}),
				  "unknown field 'overhead-root'");
		CHECK_INPUT_ERROR(parse_one("", 1), "unknown field ''");
	}

	TEST_CASE("not a JSON object")
	{
		CHECK_INPUT_ERROR(parse_config(""), "configuration");
		CHECK_INPUT_ERROR(parse_config("{\"mode\": }"), "not valid JSON");
		CHECK_INPUT_ERROR(parse_config("[]"), "must be a JSON object");
		CHECK_INPUT_ERROR(parse_config("// comment\n{}"), "not valid JSON");
	}

	TEST_CASE("load_config: explicit path, default path, malformed file")
	{
		unit::TempDir dir;
		std::string missing = dir / "missing.json";

		check_defaults(load_config(std::nullopt, missing));
		CHECK_INPUT_ERROR(load_config(missing, dir / "default.json"), missing);
		CHECK_INPUT_ERROR(load_config(missing, dir / "default.json"), "cannot be read");

		std::string file =
			dir.write("config.json", R"({"mode": "sandbox-only", "vmm_search_depth": 2})");
		Config config = load_config(file, missing);
		CHECK(config.mode == Mode::sandbox_only);
		CHECK(config.vmm_search_depth == 2);
		Config from_default = load_config(std::nullopt, file);
		CHECK(from_default.mode == Mode::sandbox_only);

		std::string bad = dir.write("bad.json", R"({"mode": "split",)");
		CHECK_INPUT_ERROR(load_config(bad, missing), bad);
		CHECK_INPUT_ERROR(load_config(std::nullopt, bad), bad + ": configuration: not valid JSON");

		std::string unknown = dir.write("unknown.json", R"({"modes": "split"})");
		CHECK_INPUT_ERROR(load_config(unknown, missing), unknown);
		CHECK_INPUT_ERROR(load_config(unknown, missing), "'modes'");

		std::string directory = dir / "a-directory";
		std::filesystem::create_directory(directory);
		CHECK_INPUT_ERROR(load_config(std::nullopt, directory), directory);

		std::string large = dir.write("large.json", std::string(max_config_size + 1, ' '));
		CHECK_INPUT_ERROR(load_config(large, missing), "larger than");
	}

	TEST_CASE("apply_annotations: allowed keys are applied")
	{
		Config config = parse_one("allowed_annotations", {"mode", "qmp-socket"});
		auto outcomes =
			apply_annotations(config, {{"io.vmm-cgroup-hooks.mode", "sandbox-only"},
						   {"io.vmm-cgroup-hooks.qmp-socket", "/run/vm/qmp.sock"}});
		CHECK(config.mode == Mode::sandbox_only);
		CHECK(config.qmp_socket == "/run/vm/qmp.sock");
		REQUIRE(outcomes.size() == 2);
		for (const auto &outcome : outcomes) {
			CAPTURE(outcome.key);
			CHECK(outcome.applied);
			CHECK(outcome.reason.empty());
		}
		CHECK(outcomes[0].key == "io.vmm-cgroup-hooks.mode");
		CHECK(outcomes[0].value == "sandbox-only");
	}

	TEST_CASE("apply_annotations: keys not allowed are refused and not applied")
	{
		Config config = parse_one("allowed_annotations", {"qmp-socket"});
		auto outcomes = apply_annotations(config, {{"io.vmm-cgroup-hooks.mode", "sandbox-only"},
							   {"io.vmm-cgroup-hooks.overhead_root", "/x"},
							   {"io.vmm-cgroup-hooks.", "x"}});
		CHECK(config.mode == Mode::split);
		CHECK(config.overhead_root == "/vmm_overhead");
		REQUIRE(outcomes.size() == 3);
		for (const auto &outcome : outcomes) {
			CAPTURE(outcome.key);
			CHECK_FALSE(outcome.applied);
			CHECK_FALSE(outcome.reason.empty());
		}

		Config none;
		auto refused = apply_annotations(none, {{"io.vmm-cgroup-hooks.mode", "sandbox-only"}});
		CHECK(none.mode == Mode::split);
		REQUIRE(refused.size() == 1);
		CHECK_FALSE(refused[0].applied);
		CHECK(refused[0].value == "sandbox-only");
	}

	TEST_CASE("apply_annotations: a bad value for an allowed key throws")
	{
		Config config = parse_one("allowed_annotations", {"mode", "qmp-socket"});
		CHECK_INPUT_ERROR(apply_annotations(config, {{"io.vmm-cgroup-hooks.mode", "off"}}),
				  "io.vmm-cgroup-hooks.mode");
		CHECK_INPUT_ERROR(apply_annotations(config, {{"io.vmm-cgroup-hooks.mode", ""}}), "mode");
		CHECK_INPUT_ERROR(
			apply_annotations(config, {{"io.vmm-cgroup-hooks.qmp-socket", "../../etc/x"}}),
			"io.vmm-cgroup-hooks.qmp-socket");
		CHECK_INPUT_ERROR(
			apply_annotations(config, {{"io.vmm-cgroup-hooks.qmp-socket", "/run/../etc/x"}}),
			"qmp-socket");
		CHECK_INPUT_ERROR(apply_annotations(config, {{"io.vmm-cgroup-hooks.qmp-socket",
							      "/" + std::string(107, 's')}}),
				  "qmp-socket");
		CHECK(config.mode == Mode::split);
		CHECK_FALSE(config.qmp_socket);
	}

	TEST_CASE("apply_annotations: the enable annotation and other prefixes are ignored")
	{
		Config config = parse_one("allowed_annotations", {"mode"});
		auto outcomes = apply_annotations(config, {{"io.vmm-cgroup-hooks.enable", "true"},
							   {"io.kubernetes.cri-o.mode", "sandbox-only"},
							   {"mode", "sandbox-only"},
							   {"io.vmm-cgroup-hooksXmode", "sandbox-only"},
							   {"org.opencontainers.image.title", "x"}});
		CHECK(outcomes.empty());
		CHECK(config.mode == Mode::split);
		CHECK(apply_annotations(config, {}).empty());
	}
}
