#include "hook.h"

#include <sys/auxv.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include "config.h"
#include "errors.h"
#include "io.h"
#include "log.h"
#include "paths.h"
#include "settler.h"
#include "stages.h"
#include "state.h"
#include "text.h"

#ifndef VMMCG_DEFAULT_CONFIG
#define VMMCG_DEFAULT_CONFIG "/etc/vmm-cgroup-hooks/config.json"
#endif
#ifndef VMMCG_VERSION
#define VMMCG_VERSION "unknown"
#endif

namespace vmmcg {

namespace {

// The state comes in a pipe the runtime closes at once; one left open must not hold the hook.
constexpr std::chrono::milliseconds stdin_timeout{5000};

struct StageInfo {
	const char *name;       // as the runtime spec names it
	const char *executable; // as installed
	const char *summary;
};

StageInfo info_of(Stage stage)
{
	switch (stage) {
	case Stage::create_runtime:
		return {"createRuntime", "vmm-cgroup-create-runtime",
			"creates the overhead cgroup (v1) or the threaded children of the container's\n"
			"cgroup (v2), applies the overhead limits and writes the record"};
	case Stage::poststart:
		return {"poststart", "vmm-cgroup-poststart",
			"finds the VMM and its vCPU threads and moves them into place, or hands over to\n"
			"a detached settler, which then watches the VMM for as long as it runs"};
	case Stage::poststop:
		return {"poststop", "vmm-cgroup-poststop",
			"ends a settler or watcher still running, moves what remains back, removes what\n"
			"the project created and restores the container's cgroup; idempotent"};
	}
	return {"?", "?", ""};
}

void print_help(const StageInfo &info)
{
	std::printf(
		"Usage: %s [--config PATH | --config=PATH] [--gate=runtime]\n"
		"       %s --help | -h | --version\n\n"
		"The %s OCI hook of vmm-cgroup-hooks:\n%s.\n"
		"Reads the OCI state on standard input and the bundle's config.json.\n\n"
		"Options:\n"
		"  --config PATH   the configuration (default %s;\n"
		"                  the built-in defaults when that file is absent; a file named\n"
		"                  here must exist)\n"
		"  --gate=runtime  the node owner's runtime handler asks for the split (the runtime\n"
		"                  wrapper adds it); without it only the enable annotation can, where\n"
		"                  the configuration's opt_in is \"annotation\"\n"
		"  --help, -h      this text\n"
		"  --version       the version\n\n"
		"Exit status: 0 done or nothing to do, 1 the host refused something or something could not\n"
		"be cleaned, 2 bad input (state, config.json, configuration, annotations, arguments).\n"
		"See vmm-cgroup-hooks(8) and vmm-cgroup-hooks.json(5).\n",
		info.executable, info.executable, info.name, info.summary, VMMCG_DEFAULT_CONFIG);
}

struct Arguments {
	std::optional<std::string> config;
	bool runtime_gate = false;
	bool help = false;
	bool version = false;
	// --settler NAME ID PID START_TIME: this process is the settler poststart started (settler.h), not a
	// hook; never given by a runtime or a user.
	std::optional<SettlerStart> settler;
};

template <typename T>
T settler_number(std::string_view text, T least)
{
	if (auto value = to_number<T>(text); value && *value >= least)
		return *value;
	throw InputError("argument '--settler': '" + printable(text) + "' is no number of " +
			 std::to_string(least) + " or more");
}

// The record's name and the container's id as a runtime's state would give them (no '/', no control
// character): checked before either names a file or goes into a log line.
std::string settler_name(std::string_view text, std::size_t max_size = max_container_id_size)
{
	if (!is_valid_container_id(text, max_size))
		throw InputError("argument '--settler': '" + printable(text) + "' is no record name or id");
	return std::string(text);
}

Arguments parse_arguments(int argc, char **argv)
{
	Arguments args;
	for (int i = 1; i < argc; ++i) {
		std::string_view arg = argv[i];
		if (arg == "--config" && i + 1 >= argc)
			throw InputError("argument '--config' needs a path");
		else if (arg == "--config")
			args.config = argv[++i];
		else if (arg == "--config=")
			throw InputError("argument '--config=' needs a path");
		else if (arg.starts_with("--config="))
			args.config = std::string(arg.substr(9));
		else if (arg == "--help" || arg == "-h")
			args.help = true;
		else if (arg == "--version")
			args.version = true;
		else if (arg == "--gate=runtime")
			args.runtime_gate = true;
		else if (arg == "--settler" && i + 4 < argc) {
			SettlerStart start;
			start.name = settler_name(argv[i + 1], max_instance_name_size);
			start.id = settler_name(argv[i + 2]);
			start.container = {settler_number<pid_t>(argv[i + 3], 1),
					   settler_number<std::uint64_t>(argv[i + 4], 0)};
			args.settler = std::move(start);
			i += 4;
		} else
			throw InputError("argument '" + printable(arg) +
					 "': unknown (usage: [--config PATH] [--gate=runtime], or --help)");
	}
	return args;
}

int run_stage(Stage stage, StageContext context)
{
	switch (stage) {
	case Stage::create_runtime:
		return create_runtime(std::move(context));
	case Stage::poststart:
		return poststart(std::move(context));
	case Stage::poststop:
		return poststop(context);
	}
	return exit_failure;
}

} // namespace

int run_hook(Stage stage, int argc, char **argv)
{
	StageInfo info = info_of(stage);
	setup_logging(info.name);
	// A child's exit is reaped by the hook (the settler's, the systemd helper's), so that its pid is not
	// another process's while a record names it: a SIGCHLD the runtime left ignored would reap it at
	// once.
	::signal(SIGCHLD, SIG_DFL);
	try {
		// Set-user-id or file capabilities would make anyone who can run a hook root: a hook is run
		// by root, never by a mistake of its installation.
		if (::getauxval(AT_SECURE) != 0)
			throw InputError(
				std::string(info.executable) +
				" runs with set-user-id or file capabilities: refused (install it 0755 "
				"root:root, without either)");
		Arguments args = parse_arguments(argc, argv);
		if (args.help || args.version) {
			args.help ? print_help(info)
				  : (void)std::printf("%s %s\n", info.executable, VMMCG_VERSION);
			return exit_ok;
		}
		if (args.settler && stage == Stage::poststart) {
			args.settler->config_path = args.config;
			set_log_container(args.settler->id);
			Config config = load_config(args.config, VMMCG_DEFAULT_CONFIG);
			apply_log_options(config.log);
			return run_settler(config, *args.settler);
		}
		if (args.settler)
			throw InputError("argument '--settler': only poststart starts a settler");
		// Whatever happens below, the stage ends: the kernel ends the process at this bound (the hook
		// files' timeout is longer). A killed createRuntime leaves its intent record for cleanup.
		::alarm(stage_bound_seconds);
		State state = parse_state(read_fd_with_deadline(STDIN_FILENO, max_state_size,
								"state (standard input)", stdin_timeout));
		set_log_container(state.id);
		Config config = load_config(args.config, VMMCG_DEFAULT_CONFIG);
		apply_log_options(config.log);
		return run_stage(stage,
				 {std::move(state), std::move(config), args.runtime_gate, args.config});
	} catch (const InputError &e) {
		spdlog::error("{}", e.what());
		return exit_bad_input;
	} catch (const std::exception &e) {
		spdlog::error("{}", e.what());
		return exit_failure;
	}
}

} // namespace vmmcg
