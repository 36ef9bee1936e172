// vmm-cgroup-runtime: an OCI runtime wrapper. On create and run it adds the vmm-cgroup hooks to the
// bundle's config.json (not for a pod's sandbox container); then, for every command, it execs the real
// runtime (runc or crun) with the same arguments, so exit codes, signals, stdio and the shim's protocol are
// the runtime's own. It never forks. `vmm-cgroup-runtime --wrapper-help` says how it is configured.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

#include "config.h"
#include "errors.h"
#include "invocation.h"
#include "io.h"
#include "kill_all.h"
#include "log.h"
#include "paths.h"
#include "report.h"
#include "spec_file.h"
#include "spec_hooks.h"
#include "wrapper_config.h"

namespace {

using namespace vmmcg;
using namespace vmmcg::runtime;

constexpr int exit_bad_input = 2;
constexpr int exit_host_error = 1;
constexpr int exit_no_runtime = 127;
constexpr std::size_t max_config_size = 64 << 10;
constexpr const char *config_env = "VMMCG_RUNTIME_CONFIG";

#ifndef VMMCG_DEFAULT_CONFIG
#define VMMCG_DEFAULT_CONFIG "/etc/vmm-cgroup-hooks/config.json"
#endif

constexpr const char *help_text = R"(Usage: vmm-cgroup-runtime [RUNTIME ARGUMENTS...]
       vmm-cgroup-runtime --wrapper-help

An OCI runtime wrapper for vmm-cgroup-hooks. Configured as the runtime of one handler (containerd's
BinaryName, CRI-O's runtime_path, podman's --runtime), it runs the real runtime with the same arguments
(--help and --version included: they are the runtime's). On `create` and `run` it first adds the hooks
vmm-cgroup-create-runtime, -poststart and -poststop to <bundle>/config.json, except for a pod's sandbox
container (annotation io.kubernetes.cri.container-type or io.kubernetes.cri-o.ContainerType = sandbox).
A config.json it cannot parse is refused: one line on stderr (and in the runtime's --log), exit code 2,
and the runtime is not run. On `kill --all` (-a) of a container split on cgroup v2 it first undoes the
split as poststop would (runc before 1.2 cannot read cgroup.procs of threaded cgroups).

Configuration: )" VMMCG_RUNTIME_CONFIG R"( (or the file named by $VMMCG_RUNTIME_CONFIG, for
engines whose environment the node owner sets, and for tests), JSON, every key optional:
  "runtime"         the runtime to exec (absolute path); default: the first of /usr/bin/runc,
                    /usr/sbin/runc, /usr/bin/crun that is executable
  "hook_dir"        where the hooks are; default )" VMMCG_HOOK_DIR R"(
  "hook_config"     passed to the hooks as --config PATH; default: none (the hooks' own default)
  "hook_timeout_s"  the hooks' timeout in config.json, 1..300; default 30

A runtime.json it cannot read or parse refuses create and run (exit code 2); every other command goes to
the default runtime with the built-in settings, after one line on stderr, so containers can be stopped.

Exit codes: the runtime's; 2 for a config.json, argument or (create, run) runtime.json the wrapper
refuses; 1 when the bundle cannot be rewritten; 127 when the runtime cannot be executed.
)";

WrapperConfig built_in_config()
{
	WrapperConfig config;
	config.hook_dir = VMMCG_HOOK_DIR;
	return config;
}

std::string config_path()
{
	const char *env = std::getenv(config_env);
	if (!env)
		return VMMCG_RUNTIME_CONFIG;
	if (!is_clean_absolute(env))
		throw InputError(std::string("$") + config_env + ": must be a clean absolute path, not '" +
				 env + "'");
	return env;
}

// runtime.json's text; std::nullopt when it does not exist (the built-in configuration).
std::optional<std::string> read_runtime_json()
{
	const std::string path = config_path();
	std::error_code ec;
	std::string text = read_file(path, max_config_size, ec);
	if (ec == std::errc::no_such_file_or_directory)
		return std::nullopt;
	if (ec == std::errc::file_too_large)
		throw InputError(path + ": larger than " + std::to_string(max_config_size) + " bytes");
	if (ec)
		throw std::system_error(ec, "reading " + path);
	return text;
}

// runtime.json for this command: one it cannot use refuses create and run, and sends every other command
// to the default runtime with one line, so that the handler's containers can still be stopped.
WrapperConfig load_config(const Invocation &inv)
{
	LoadedConfig loaded = wrapper_config_for(inv.command, read_runtime_json, built_in_config());
	if (loaded.problem)
		report_warning(inv, *loaded.problem + ": '" + inv.command +
					    "' goes to the default runtime (the first of /usr/bin/runc, "
					    "/usr/sbin/runc, /usr/bin/crun)");
	return loaded.config;
}

bool same_file(const std::string &a, const char *b)
{
	struct stat sa, sb;
	return ::stat(a.c_str(), &sa) == 0 && ::stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

std::string resolve_runtime(const WrapperConfig &config)
{
	std::string runtime = choose_runtime(
		config, [](const std::string &path) { return ::access(path.c_str(), X_OK) == 0; });
	if (same_file(runtime, "/proc/self/exe"))
		throw InputError("runtime " + runtime +
				 " is this wrapper itself: name the real runc or crun in " + config_path());
	return runtime;
}

// create and run: the hooks into <bundle>/config.json, unless it is a pod's sandbox or has them already.
void prepare_bundle(std::span<const std::string_view> args, const Invocation &inv,
		    const WrapperConfig &config)
{
	auto bundle = find_bundle(args.subspan(inv.command_index + 1));
	SpecFile file = read_spec_file(bundle.value_or("."));
	Spec spec = parse_spec(file.text);
	if (is_pod_sandbox(spec))
		return;
	if (add_hooks(spec, hook_settings(config)))
		replace_spec_file(file, spec.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict));
}

// kill --all of a container split on v2: the split undone first (kill_all.h). Whatever fails here is
// logged and the kill goes on: the runtime's kill is what stops the container.
void prepare_kill_all(std::span<const std::string_view> args, const Invocation &inv,
		      const WrapperConfig &config)
{
	std::optional<std::string> id = kill_all_target(args.subspan(inv.command_index + 1));
	if (!id)
		return;
	setup_logging("runtime");
	set_log_container(*id);
	try {
		Config hooks = vmmcg::load_config(config.hook_config, VMMCG_DEFAULT_CONFIG);
		apply_log_options(hooks.log);
		Collapse done = collapse_for_kill_all(hooks.record_dir, *id);
		if (done.collapsed > 0)
			spdlog::info(
				"kill --all: the split on cgroup v2 undone first, so that the runtime can "
				"read every cgroup.procs (opencontainers/runc#3821): the VMM is back in S, "
				"S/vcpu and S/overhead removed{}",
				done.failures ? " (with " + std::to_string(done.failures) + " failures)"
					      : "");
	} catch (const std::exception &e) {
		spdlog::error("kill --all: {}: the split is left as it is", e.what());
	}
}

int exec_runtime(const Invocation &inv, const std::string &runtime, char **argv)
{
	argv[0] = const_cast<char *>(runtime.c_str());
	::execv(runtime.c_str(), argv);
	report_error(inv, "cannot execute " + runtime + ": " + std::generic_category().message(errno));
	return exit_no_runtime;
}

int run(int argc, char **argv)
{
	std::vector<std::string_view> args(argv + 1, argv + argc);
	Invocation inv;
	try {
		inv = parse_invocation(args);
		WrapperConfig config = load_config(inv);
		std::string runtime = resolve_runtime(config);
		if (edits_bundle(inv.command))
			prepare_bundle(args, inv, config);
		else if (inv.command == "kill")
			prepare_kill_all(args, inv, config);
		return exec_runtime(inv, runtime, argv);
	} catch (const InputError &e) {
		report_error(inv, e.what());
		return exit_bad_input;
	} catch (const std::exception &e) {
		report_error(inv, e.what());
		return exit_host_error;
	}
}

} // namespace

int main(int argc, char **argv)
{
	if (argc == 2 && std::string_view(argv[1]) == "--wrapper-help") {
		std::fputs(help_text, stdout);
		return 0;
	}
	return run(argc, argv);
}
