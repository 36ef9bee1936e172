// The command line of vmm-cgroupctl: one executable, a command each for status, reconcile and gc, with
// --help for it and each command, --version, and --config PATH (the hooks' configuration: its record_dir,
// vmm_names, vcpu_proof...). Exit codes as the hooks': 0 done, 1 the host refused or something is wrong
// (see each command), 2 bad arguments or configuration.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmmcg::ctl {

struct Arguments {
	std::optional<std::string> config;
	std::string command; // "status", "reconcile", "gc", "help"; empty with --help or --version alone
	std::vector<std::string> targets;
	bool json = false;
	bool prometheus = false;
	bool all = false;
	bool dry_run = false;
	bool force_orphans = false;
	bool help = false;
	bool version = false;
};

// Throws InputError naming the argument.
Arguments parse_arguments(const std::vector<std::string_view> &args);

// The usage of one command, or of the executable ("").
std::string help_text(std::string_view command);

// Colour when standard output is a terminal and NO_COLOR is unset or empty (no-color.org).
bool use_colour(bool stdout_is_tty, const char *no_color);

// main(): never throws.
int run_ctl(int argc, char **argv);

} // namespace vmmcg::ctl
