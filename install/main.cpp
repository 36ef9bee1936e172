// vmm-cgroup-install: registers vmm-cgroup-hooks with a container engine on a host root (`/`, or a host's
// root mounted elsewhere, as a DaemonSet sees it), or undoes it. The engine's files are edited as text (a
// marked block), checked with toml++ before and after; the first install keeps the original beside it.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "errors.h"
#include "installer.h"
#include "paths.h"

namespace {

using namespace vmmcg;
using namespace vmmcg::install;

constexpr int exit_bad_input = 2;
constexpr int exit_host_error = 1;

constexpr const char *help_text =
	R"(Usage: vmm-cgroup-install [OPTIONS] install|uninstall --engine containerd|crio|podman

Registers vmm-cgroup-hooks with a container engine, or removes the registration. Idempotent; it never
restarts the engine (it says how). Every file it edits is checked with a TOML parser before and after;
a file it cannot parse, or a handler of that name it did not add, is left alone (exit code 2).

  containerd  config version 2 (containerd 1.6, 1.7): a block in config.toml adding the runtime handler
              (runtime_type io.containerd.runc.v2, BinaryName the wrapper), since an `imports` drop-in
              replaces whole sections there; the original is kept as config.toml.vmmcg-backup.
              Version 3 (containerd 2.x): conf.d/50-vmm-cgroup-hooks.toml, imported by config.toml.
  crio        crio.conf.d/50-vmm-cgroup-hooks.conf: the handler with the wrapper as runtime_path.
  podman      nothing with the default hook directory; else containers.conf.d/50-vmm-cgroup-hooks.conf
              with the hook directory added to hooks_dir.
containerd and crio: the wrapper's configuration )" VMMCG_RUNTIME_CONFIG R"( is written
when --runtime, --hook-config or --prefix ask for something the wrapper's defaults do not give.

Options:
  --root DIR          the host's root file system (default /); paths written are the host's
  --engine NAME       containerd, crio or podman
  --handler NAME      the runtime handler (a RuntimeClass's handler), default vmm
  --prefix DIR        where vmm-cgroup-hooks is installed on the host (default )" VMMCG_PREFIX R"():
                      the hooks and the wrapper in DIR/libexec/vmm-cgroup-hooks, hook files in
                      DIR/share/containers/oci/hooks.d
  --wrapper PATH      the wrapper's path on the host (default <prefix>'s)
  --runtime PATH      the real runtime the wrapper execs (runtime.json "runtime")
  --hook-config PATH  the hooks' configuration file (runtime.json "hook_config")
  --engine-config PATH  the engine's main configuration file on the host (default
                      /etc/containerd/config.toml, /etc/crio/crio.conf, /etc/containers/containers.conf)
  --help, --version

Exit codes: 0 done (or nothing to do); 1 a file could not be read or written; 2 bad arguments, or a
configuration left alone (one line says why).
)";

struct Args {
	std::string root = "/";
	std::optional<Action> action;
	std::optional<Engine> engine;
	std::string handler = "vmm";
	std::string prefix;
	std::string wrapper;
	std::optional<std::string> runtime;
	std::optional<std::string> hook_config;
	std::string engine_config;
	bool help = false;
	bool version = false;
};

Args parse_args(int argc, char **argv)
{
	Args args;
	std::vector<std::string_view> rest(argv + 1, argv + argc);
	for (std::size_t i = 0; i < rest.size(); ++i) {
		std::string_view arg = rest[i];
		std::string_view value;
		bool has_value = false;
		if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
			value = arg.substr(eq + 1);
			arg = arg.substr(0, eq);
			has_value = true;
		}
		auto take = [&]() -> std::string {
			if (has_value)
				return std::string(value);
			if (i + 1 >= rest.size())
				throw InputError(std::string(arg) + ": needs a value");
			return std::string(rest[++i]);
		};
		if (arg == "--help" || arg == "-h")
			args.help = true;
		else if (arg == "--version")
			args.version = true;
		else if (arg == "--root")
			args.root = take();
		else if (arg == "--engine") {
			std::string name = take();
			if (name == "containerd")
				args.engine = Engine::containerd;
			else if (name == "crio" || name == "cri-o")
				args.engine = Engine::crio;
			else if (name == "podman")
				args.engine = Engine::podman;
			else
				throw InputError("--engine '" + name + "': not containerd, crio or podman");
		} else if (arg == "--handler")
			args.handler = take();
		else if (arg == "--prefix")
			args.prefix = take();
		else if (arg == "--wrapper")
			args.wrapper = take();
		else if (arg == "--runtime")
			args.runtime = take();
		else if (arg == "--hook-config")
			args.hook_config = take();
		else if (arg == "--engine-config")
			args.engine_config = take();
		else if (arg == "install" || arg == "uninstall") {
			if (args.action)
				throw InputError("install or uninstall, once");
			args.action = arg == "install" ? Action::install : Action::uninstall;
		} else
			throw InputError("unknown argument '" + std::string(arg) + "' (--help)");
	}
	return args;
}

void check_path(const std::optional<std::string> &path, const char *option)
{
	if (path && !is_clean_absolute(*path))
		throw InputError(std::string(option) + " '" + *path + "': not a clean absolute path");
}

int run(int argc, char **argv)
{
	Args args = parse_args(argc, argv);
	if (args.help) {
		std::fputs(help_text, stdout);
		return 0;
	}
	if (args.version) {
		std::printf("vmm-cgroup-install %s\n", VMMCG_VERSION);
		return 0;
	}
	if (!args.action || !args.engine)
		throw InputError("give install or uninstall, and --engine containerd|crio|podman (--help)");
	check_path(args.prefix.empty() ? std::nullopt : std::optional(args.prefix), "--prefix");
	check_path(args.runtime, "--runtime");
	check_path(args.hook_config, "--hook-config");
	Defaults defaults{VMMCG_HOOK_DIR, VMMCG_HOOKS_D, VMMCG_RUNTIME_CONFIG, VMMCG_DEFAULT_CONFIG};
	Settings s;
	s.engine = *args.engine;
	s.action = *args.action;
	s.handler = args.handler;
	s.hook_dir =
		args.prefix.empty() ? defaults.hook_dir : join_path(args.prefix, "libexec/vmm-cgroup-hooks");
	s.hooks_d = args.prefix.empty() ? defaults.hooks_d
					: join_path(args.prefix, "share/containers/oci/hooks.d");
	s.wrapper = args.wrapper.empty() ? join_path(s.hook_dir, "vmm-cgroup-runtime") : args.wrapper;
	s.runtime = args.runtime;
	s.hook_config = args.hook_config;
	s.engine_config = args.engine_config;
	HostRoot root(args.root);
	Plan p = plan(root, s, defaults);
	for (const auto &line : apply(root, p))
		std::printf("vmm-cgroup-install: %s\n", line.c_str());
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	try {
		return run(argc, argv);
	} catch (const InputError &e) {
		std::fprintf(stderr, "vmm-cgroup-install: %s\n", e.what());
		return exit_bad_input;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "vmm-cgroup-install: %s\n", e.what());
		return exit_host_error;
	}
}
