#include "cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>

#include "config.h"
#include "errors.h"
#include "format.h"
#include "gc.h"
#include "hook.h"
#include "inspect.h"
#include "log.h"
#include "reconcile.h"
#include "records.h"
#include "text.h"

#ifndef VMMCG_DEFAULT_CONFIG
#define VMMCG_DEFAULT_CONFIG "/etc/vmm-cgroup-hooks/config.json"
#endif
#ifndef VMMCG_VERSION
#define VMMCG_VERSION "unknown"
#endif

namespace vmmcg::ctl {

namespace {

constexpr const char *general_help = R"(Usage: vmm-cgroupctl [--config PATH] COMMAND [ARGUMENTS]
       vmm-cgroupctl COMMAND --help | --help | --version

Sees, reconciles and collects what the vmm-cgroup-hooks made: the containers of the record
directory, their cgroups and where their VMMs' threads are.

Commands:
  status [NAME|ID] [--json | --prometheus]  every managed container (or one), checked against
                                            the cgroups: layout, VMM, threads, CPU split, throttling
  reconcile NAME|ID... | --all              place the VMM's threads again now, as poststart does,
                                            and say what moved
  gc [--dry-run] [--force-orphans]          remove what belongs to containers that are gone
  help [COMMAND]                            this text, or a command's

Options:
  --config PATH  the hooks' configuration (default )" VMMCG_DEFAULT_CONFIG R"(; built-in
                 defaults when it is absent): record_dir, vmm_names, vcpu_proof, overhead_root...
  --help, -h     this text, or the command's
  --version      the version

Exit status: 0 done; 1 the host refused something, or a command found it wrong (see each
command's --help); 2 bad arguments or configuration. See vmm-cgroupctl(8).
)";

constexpr const char *status_help =
	R"(Usage: vmm-cgroupctl [--config PATH] status [NAME|ID] [--json | --prometheus]

Every container of the record directory (or those NAME|ID names: an instance name, a container
id, or the start of one), checked against the cgroups and /proc: mode, host mode, phase, the
cgroups S and O (v1, per hierarchy) or S/vcpu and S/overhead (v2) and whether they exist, the
settler or watcher, the VMM (found from the container's process) and each of its threads with
where it is now and whether that is the side the layout puts it on (vCPU threads under the
container's limit, every other thread on the overhead side), the CPU time of the vCPU threads
and of the overhead, and the throttling of each side.

  --json        one JSON document (schema: docs/ctl-status.schema.json)
  --prometheus  the Prometheus text format, for node_exporter's textfile collector

A tree otherwise, coloured when standard output is a terminal and NO_COLOR is unset.
Exit status: 0 (whatever the placement: placement_ok says it); 1 when NAME|ID matches no record;
2 bad arguments.
)";

constexpr const char *reconcile_help = R"(Usage: vmm-cgroupctl [--config PATH] reconcile NAME|ID... | --all

Places the VMM's threads of each container named (or of every one) again now, after a vCPU was
added or someone moved threads by hand, with poststart's safety rules: the VMM is found from the
container's process and must be in this container's cgroups, its vCPU threads must be proven
(vcpu_proof), nothing moves without them, and only this VMM's threads move; a record whose
container process is not in its cgroups, or whose mounts are no cgroup file systems, is refused.
Updates the record as poststart does, and prints each thread it moved (tid, name, from, to).
Skips containers in sandbox-only mode, whose createRuntime did not finish, whose process is
gone, or whose settler still runs.

Exit status: 0 when every container named was placed or skipped; 1 when one could not be
placed (refused, its vCPUs not verified within 2 s, an unreadable record), NAME|ID matches no
record, or it is only the start of several containers' ids; 2 bad arguments.
)";

constexpr const char *gc_help = R"(Usage: vmm-cgroupctl [--config PATH] gc [--dry-run] [--force-orphans]

Removes what belongs to containers that are gone, as poststop would have (an engine killed before
poststop, a createRuntime killed midway): their settler or watcher, the cgroups their record
lists, the record. A container is gone when its S exists in no hierarchy, or when its process
(pid and start time, from the record) and its VMM are dead (the runtime is not asked). Nothing
of a live container is touched: a container whose process or VMM runs, or whose cgroups still
hold a task, is kept; so is a record whose mount is no cgroup file system, whose settler or watcher is no fork of
poststart, or whose O, S (v2), settler or watcher another record names too. Unreadable records
are reported and left alone.

Also reports overhead cgroups that no record names (vmm-overhead-* beside a recorded S, or below
the overhead root).

  --dry-run        say what would be removed; remove nothing
  --force-orphans  also remove those overhead cgroups that hold no task and no cgroup

Safe to run from a timer (vmm-cgroupctl-gc.timer). Exit status: 0 done (kept records are no
failure); 1 when something could not be removed; 2 bad arguments.
)";

void set_flag(Arguments &args, std::string_view arg)
{
	static const std::map<std::string_view, bool Arguments::*> flags = {
		{"--json", &Arguments::json},
		{"--prometheus", &Arguments::prometheus},
		{"--all", &Arguments::all},
		{"--dry-run", &Arguments::dry_run},
		{"--force-orphans", &Arguments::force_orphans},
		{"--help", &Arguments::help},
		{"-h", &Arguments::help},
		{"--version", &Arguments::version},
	};
	auto it = flags.find(arg);
	if (it == flags.end())
		throw InputError("argument '" + printable(arg) + "': unknown (vmm-cgroupctl --help)");
	args.*(it->second) = true;
}

bool is_command(std::string_view name)
{
	return name == "status" || name == "reconcile" || name == "gc" || name == "help";
}

std::string unknown_command(std::string_view name)
{
	return "command '" + printable(name) + "': unknown; commands: status, reconcile, gc, help";
}

// The problem, and where the usage is: the command's own --help once the command is known.
void require(bool condition, const std::string &problem, std::string_view command = {})
{
	if (!condition)
		throw InputError(problem + " (vmm-cgroupctl " +
				 (is_command(command) && command != "help" ? std::string(command) + " "
									   : std::string()) +
				 "--help)");
}

// Which flags and how many targets each command takes.
void check_command(const Arguments &args)
{
	const std::string &c = args.command;
	require(is_command(c), unknown_command(c));
	auto check = [&](bool condition, const std::string &problem) { require(condition, problem, c); };
	check(!args.json && !args.prometheus ? true : c == "status",
	      "--json and --prometheus are for status");
	check(!(args.json && args.prometheus), "status: --json or --prometheus, not both");
	check(!args.all || c == "reconcile", "--all is for reconcile");
	check(!(args.dry_run || args.force_orphans) || c == "gc", "--dry-run and --force-orphans are for gc");
	check(c != "status" || args.targets.size() <= 1, "status: at most one NAME|ID");
	check(c != "gc" || args.targets.empty(), "gc takes no NAME|ID");
	check(c != "help" || args.targets.size() <= 1, "help: at most one command");
	check(c != "help" || args.targets.empty() || is_command(args.targets[0]),
	      "help: '" + (args.targets.empty() ? std::string() : printable(args.targets[0])) +
		      "' is not a command; commands: status, reconcile, gc");
	check(c != "reconcile" || args.all != !args.targets.empty(), "reconcile: NAME|ID... or --all");
}

} // namespace

Arguments parse_arguments(const std::vector<std::string_view> &list)
{
	Arguments args;
	for (std::size_t i = 0; i < list.size(); ++i) {
		std::string_view arg = list[i];
		if (arg == "--config") {
			require(i + 1 < list.size(), "--config needs a PATH");
			args.config = std::string(list[++i]);
		} else if (arg.starts_with("--config=")) {
			require(arg.size() > 9, "--config= needs a PATH");
			args.config = std::string(arg.substr(9));
		} else if (arg.starts_with("-")) {
			set_flag(args, arg);
		} else if (args.command.empty()) {
			args.command = std::string(arg);
		} else {
			args.targets.emplace_back(arg);
		}
	}
	if (args.command.empty()) {
		require(args.help || args.version, "a command is needed: status, reconcile, gc");
		return args;
	}
	if (args.help) // the command's usage, whatever else the line holds
		require(is_command(args.command), unknown_command(args.command));
	else
		check_command(args);
	return args;
}

std::string help_text(std::string_view command)
{
	if (command == "status")
		return status_help;
	if (command == "reconcile")
		return reconcile_help;
	if (command == "gc")
		return gc_help;
	return general_help;
}

bool use_colour(bool stdout_is_tty, const char *no_color)
{
	return stdout_is_tty && (no_color == nullptr || *no_color == '\0');
}

namespace {

void print(const std::string &text)
{
	std::fwrite(text.data(), 1, text.size(), stdout);
}

// `one_each`: every target must name one container (its instance name, its id, or the start of one id),
// as for reconcile, which moves threads; status shows every container a prefix matches.
std::vector<LoadedRecord> selected(const Config &config, const std::vector<std::string> &targets,
				   bool one_each = false)
{
	std::vector<LoadedRecord> all = load_records(config.record_dir);
	if (targets.empty())
		return all;
	std::vector<LoadedRecord> out;
	for (const auto &target : targets) {
		std::vector<LoadedRecord> some = select_records(all, target);
		if (some.empty())
			throw HostError("no managed container matches '" + printable(target) + "' in " +
					config.record_dir);
		if (auto why = ambiguity(all, target); why && one_each)
			throw HostError(*why);
		out.insert(out.end(), some.begin(), some.end());
	}
	return out;
}

int status_command(const Arguments &args, const Config &config)
{
	StatusReport report = inspect_all(selected(config, args.targets), config, ProcFs());
	if (args.json)
		print(format_json(report));
	else if (args.prometheus)
		print(format_prometheus(report));
	else
		print(format_tree(report, use_colour(::isatty(STDOUT_FILENO), std::getenv("NO_COLOR"))));
	return exit_ok;
}

int reconcile_command(const Arguments &args, const Config &config)
{
	std::vector<ReconcileOutcome> outcomes;
	for (const auto &loaded : selected(config, args.targets, true)) {
		if (loaded.record) {
			set_log_container(loaded.record->id);
			outcomes.push_back(reconcile(config, *loaded.record));
		} else {
			outcomes.push_back({loaded.name,
					    loaded.name,
					    ReconcileOutcome::Result::failed,
					    "unreadable record: " + loaded.error,
					    {}});
		}
	}
	print(format_reconcile(outcomes));
	return reconcile_ok(outcomes) ? exit_ok : exit_failure;
}

int gc_command(const Arguments &args, const Config &config)
{
	GcReport report = run_gc(config, {args.dry_run, args.force_orphans});
	print(format_gc(report));
	return gc_ok(report) ? exit_ok : exit_failure;
}

int run_command(const Arguments &args)
{
	Config config = load_config(args.config, VMMCG_DEFAULT_CONFIG);
	apply_log_options(config.log);
	// The command reports on stdout; the log (syslog) keeps what gc and reconcile did.
	drop_stderr_logging();
	if (args.command == "status")
		return status_command(args, config);
	if (args.command == "reconcile")
		return reconcile_command(args, config);
	return gc_command(args, config);
}

} // namespace

int run_ctl(int argc, char **argv)
{
	setup_logging("vmm-cgroupctl");
	try {
		Arguments args = parse_arguments(std::vector<std::string_view>(argv + 1, argv + argc));
		if (args.help || args.command == "help") {
			print(help_text(args.command == "help" && !args.targets.empty() ? args.targets[0]
											: args.command));
			return exit_ok;
		}
		if (args.version) {
			std::printf("vmm-cgroupctl %s\n", VMMCG_VERSION);
			return exit_ok;
		}
		return run_command(args);
	} catch (const InputError &e) {
		std::fprintf(stderr, "vmm-cgroupctl: %s\n", e.what());
		return exit_bad_input;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "vmm-cgroupctl: %s\n", e.what());
		return exit_failure;
	}
}

} // namespace vmmcg::ctl
