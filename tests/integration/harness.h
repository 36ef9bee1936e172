// The integration harness: plays the runtime's part on the host's real cgroupfs. It makes a sandbox
// cgroup S (unique prefix) in every v1 hierarchy, starts a real VMM inside it, writes a bundle and a hook
// configuration, runs the built hook executables with the state on stdin, and reads placement back from
// /proc/<pid>/task/<tid>/cgroup. Everything it made is removed in the destructor, also when a test fails.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discovery.h"

namespace vmmcg::test {

struct HookRun {
	int status = -1; // exit code, or -1 if killed
	std::string err; // what the hook wrote to stderr
};

// Where each hierarchy a thread is in says it is: "cpu" -> "/a/b", as parse_proc_cgroup gives it.
using Placement = std::map<std::string, std::string, std::less<>>;

// A hook started and not waited for yet (Sandbox::spawn).
struct RunningHook {
	pid_t pid = 0;
	int err_fd = -1; // its stderr
};

struct ThreadPlacement {
	pid_t tid;
	std::string name;
	Placement where;
};

class Sandbox
{
public:
	// name: unique within the test run; it becomes the container id (prefixed), unless id is given
	// (two containers of the same id, with different bundles and cgroups).
	explicit Sandbox(const std::string &name, const std::string &id = {});
	~Sandbox();
	Sandbox(const Sandbox &) = delete;
	Sandbox &operator=(const Sandbox &) = delete;

	const std::string &id() const { return id_; }
	const std::string &sandbox_path() const { return sandbox_; } // S, e.g. /vmmcg-it-123/sb-split
	// The instance name the hooks give this container (id and bundle), and O: beside S by default,
	// below overhead_root() after use_overhead_root().
	std::string instance() const;
	std::string overhead_path() const;
	void use_overhead_root();
	const std::string &overhead_root() const { return overhead_root_; }
	const std::string &record_dir() const { return record_dir_; }
	// Uses other's record directory, as two containers on one node do.
	void share_record_dir(const Sandbox &other);
	std::string config_path() const { return dir_ + "/config.json"; }
	std::string bundle_dir() const { return dir_ + "/bundle"; }
	std::string record_file() const { return record_dir_ + "/" + instance() + ".json"; }

	// Starts the program (argv[0] a path) with its process already in S in every hierarchy.
	pid_t start(const std::vector<std::string> &argv);
	pid_t start_test_vmm(const std::vector<std::string> &extra_args = {});
	pid_t vmm() const { return vmm_; }
	void kill_vmm();
	// Removes S in every hierarchy, as the runtime's delete does once the container's process is dead;
	// true when it is gone everywhere.
	bool remove_sandbox() const;

	// Extra configuration keys, merged into the hook configuration file.
	void configure(const std::string &json_object_members);
	// The configuration's opt_in (default "annotation"), and whether the hooks run with --gate=runtime,
	// as the runtime wrapper's do (default: no).
	void set_opt_in(const std::string &opt_in);
	void set_runtime_gate(bool gate) { gate_ = gate; }
	// The bundle's annotations (default: enable=true).
	void annotate(const std::string &json_object);
	// The bundle's linux.cgroupsPath (default: S).
	void set_cgroups_path(const std::string &path);

	std::string state() const;
	// close_stdin false: the state pipe stays open until the hook has ended, as a runtime that never
	// closes it would leave it.
	HookRun run(const std::string &stage, const std::string &state_json, bool close_stdin = true) const;
	// The same, without waiting: the caller ends it with finish() (or kills it first).
	RunningHook spawn(const std::string &stage, const std::string &state_json) const;
	HookRun finish(RunningHook &hook) const;
	HookRun create_runtime() const { return run("create-runtime", state()); }
	HookRun poststart() const { return run("poststart", state()); }
	HookRun poststop() const { return run("poststop", state()); }

	// The record createRuntime wrote (throws if there is none); settled(): no settler running any more
	// and vCPU threads recorded; settler(), watcher(): the one the record names, if it names one.
	nlohmann::json record() const;
	bool settled() const;
	std::optional<ProcessRef> settler() const { return recorded_process("settler"); }
	std::optional<ProcessRef> watcher() const { return recorded_process("watcher"); }

	std::vector<ThreadPlacement> threads() const;
	// True when no cgroup <overhead_root>/<id> exists in any hierarchy.
	bool overhead_gone() const;
	// Processes of this sandbox's hooks still running: hooks and settlers (their command line names this
	// sandbox's configuration file).
	std::vector<pid_t> hook_processes() const;

	// The hierarchies the VMM's overhead leaves S in (the default overhead_controllers), and the others.
	static const std::vector<std::string> &cpu_controllers();   // cpu, cpuset
	static const std::vector<std::string> &other_controllers(); // cpuacct, memory, pids, devices, ...

private:
	std::optional<ProcessRef> recorded_process(const char *key) const;
	void write_config() const;

	std::string id_;
	std::string prefix_;
	std::string sandbox_;
	std::string overhead_root_;
	std::string dir_;
	std::string record_dir_;
	std::string config_members_;
	std::string cgroups_path_;
	std::string annotations_ = R"({"io.vmm-cgroup-hooks.enable":"true"})";
	bool overhead_in_root_ = false;
	std::string opt_in_ = "annotation";
	bool gate_ = false;
	std::vector<std::string> args_ = {"/bin/true"}; // process.args of the bundle
	pid_t vmm_ = 0;
};

// Polls until pred() or the timeout; returns pred()'s last value. For waiting on the settler, not timing.
bool wait_until(const std::function<bool()> &pred, int timeout_ms = 10000);

std::string build_path(const std::string &relative); // below the meson build dir
// The whole of a file, as it is (empty when it cannot be read).
std::string file_text(const std::string &path);
bool is_vcpu_name(const std::string &name);
// A launcher shell that names the test VMM but starts it only after a minute: a settler waits for it.
std::vector<std::string> late_vmm_launcher();

} // namespace vmmcg::test
