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

// Where the overhead cgroup O of a v1 host goes: beside S, under S's parent (the pod's cgroup on
// Kubernetes, so the pod's limits and Pod Overhead bound it), or below one node-wide overhead_root.
enum class OverheadParent { sandbox, root };

// What proves that a process is a VMM whose threads named like vCPUs are vCPUs: the KVM vCPU file
// descriptors it holds (one anon_inode:kvm-vcpu per vCPU thread), or the thread names alone (TCG guests,
// tests without /dev/kvm). Without the proof nothing is moved.
enum class VcpuProof { kvm, names };

// What enables the hooks for a container: only the node owner's runtime handler (the runtime wrapper adds
// the hooks with --gate=runtime), or also the io.vmm-cgroup-hooks.enable annotation, which any container
// author can set (podman, where root owns the node; single-tenant CRI-O).
enum class OptIn { runtime, annotation };

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
	OptIn opt_in = OptIn::runtime;
	// v1: O is <parent of S>/vmm-overhead-<instance> (sandbox) or <overhead_root>/<instance> (root), in
	// each overhead hierarchy. cpuacct is not moved by default: the container's own accounting stays
	// whole.
	OverheadParent overhead_parent = OverheadParent::sandbox;
	std::string overhead_root = "/vmm_overhead";
	std::vector<std::string> overhead_controllers = {"cpu", "cpuset"};
	CpuLimits overhead_limits;
	// The cap on O (v1) or S/overhead (v2) when overhead_limits sets no quota and the container has a CPU
	// limit: this percentage of the limit, and at least this many millicpus (Kata's kata-qemu
	// RuntimeClass declares podFixed 250m). 0 percent: no derived cap.
	unsigned overhead_cap_percent = 25;
	unsigned overhead_cap_min_millicpus = 250;
	VcpuProof vcpu_proof = VcpuProof::kvm;
	// A VMM with more threads than this is not placed: a pass stays bounded in work.
	unsigned max_vmm_threads = 4096;
	// Programs (config.json's process.args[0], base name) that may start a VMM as a descendant: only for
	// them, or a VMM, does poststart hand over to a settler.
	std::vector<std::string> launcher_names = {"sh",   "bash",      "dash",     "busybox",
						   "tini", "dumb-init", "catatonit"};
	// Settlers and watchers running at once on the node, at most.
	unsigned max_settlers = 256;
	// After placement, a watcher follows the VMM for as long as it runs (watcher.h).
	bool watch_vmm = true;
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

// The name of every key a configuration file may hold, in the key table's order (for tests and docs
// checks that must not keep their own list).
std::vector<std::string_view> config_key_names();

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
