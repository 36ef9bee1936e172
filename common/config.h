// The node owner's configuration: an embedded default, optionally overridden by a JSON file, then by the
// per-container annotations the file allows. Every key, its bound and its meaning: docs/configuration.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmmcg {

enum class Mode { split, sandbox_only };

std::string_view to_string(Mode mode);
std::optional<Mode> parse_mode(std::string_view text);

// CPU limits in v1 terms (absent: leave as inherited). The overhead limits of the configuration, and the
// container's own CPU resources in config.json.
struct CpuLimits {
	std::optional<std::uint64_t> shares;
	std::optional<std::int64_t> quota_us; // -1: unlimited
	std::optional<std::uint64_t> period_us;
	std::optional<std::string> cpus;
	std::optional<std::string> mems;
};

struct LogOptions {
	std::string level = "info"; // trace, debug, info, warn, error, off
	bool syslog = true;
	bool stderr_sink = true;
};

struct Config {
	Mode mode = Mode::split;
	// The overhead cgroup of a container is <overhead_root>/<id> in each overhead hierarchy (v1).
	std::string overhead_root = "/vmm_overhead";
	std::vector<std::string> overhead_controllers = {"cpu", "cpuacct", "cpuset"};
	CpuLimits overhead_limits;
	// Globs matched against the executable's base name and the process name (comm, 15 characters:
	// "cloud-hyperviso*" finds Cloud Hypervisor by either).
	std::vector<std::string> vmm_names = {"qemu-system-*", "qemu-kvm", "cloud-hyperviso*", "firecracker",
					      "crosvm"};
	// Thread names of vCPUs; "{n}" stands for the vCPU index.
	std::vector<std::string> vcpu_thread_patterns = {"CPU {n}/KVM", "CPU {n}/TCG", "vcpu{n}",
							 "fc_vcpu {n}"};
	unsigned vmm_search_depth = 4;
	// A QMP socket, as a path inside the VMM's root: vCPU threads from query-cpus-fast (qmp.h), thread
	// names as the fallback. Usually set per container by the qmp-socket annotation, where allowed.
	std::optional<std::string> qmp_socket;
	unsigned qmp_timeout_ms = 1000;
	unsigned poststart_budget_ms = 200;
	unsigned settle_timeout_ms = 60000;
	unsigned settle_quiet_ms = 100;
	std::string record_dir = "/run/vmm-cgroup-hooks";
	LogOptions log;
	// Keys of io.vmm-cgroup-hooks.<key> annotations a container creator may set.
	std::vector<std::string> allowed_annotations;
};

inline constexpr std::size_t max_config_size = 1 << 20;
inline constexpr std::string_view annotation_prefix = "io.vmm-cgroup-hooks.";
inline constexpr std::string_view enable_annotation = "io.vmm-cgroup-hooks.enable";

// Parses a configuration file's text over the defaults. Unknown keys are an error that names the key.
Config parse_config(std::string_view json);

// Reads the file at path; std::nullopt path or a missing default file gives the defaults.
Config load_config(const std::optional<std::string> &path, const std::string &default_path);

// What apply_annotations did with each io.vmm-cgroup-hooks.* annotation, for the log.
struct AnnotationOutcome {
	std::string key;
	std::string value;
	bool applied;
	std::string reason; // why it was refused
};

// Applies the allowed annotations to config. An allowed key with a bad value throws InputError; a key
// that is not allowed is refused (reported, never applied).
std::vector<AnnotationOutcome> apply_annotations(Config &config,
						 const std::map<std::string, std::string> &annotations);

// A cpuset list as the kernel takes it: comma-separated "N" or "N-M" with N <= M ("0-3,8,10-11").
bool is_cpu_list(std::string_view text);

} // namespace vmmcg
