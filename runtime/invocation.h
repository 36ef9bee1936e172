// The command line the wrapper is given for the real runtime, as runc and crun read it: global options, the
// subcommand and, for create and run, the bundle. Pure: the tests feed argument lists.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vmmcg::runtime {

struct Invocation {
	static constexpr std::size_t npos = static_cast<std::size_t>(-1);

	// Index of the subcommand in the arguments (argv without argv[0]); npos when there is none
	// (`--version`, `--help`, no arguments).
	std::size_t command_index = npos;
	std::string command;
	// --log and --log-format: where the shim reads the runtime's error from (containerd takes the last
	// "error" line of a JSON log as the message of a failed create).
	std::optional<std::string> log_path;
	std::string log_format = "text";
};

// Reads the global options up to the subcommand. Value options (`--root X`, `--root=X`, and the one-dash
// `-root X` Go's flag package also takes) consume their value; an unknown option counts as a flag.
Invocation parse_invocation(std::span<const std::string_view> args);

// create and run are the commands whose bundle gets the hooks.
bool edits_bundle(std::string_view command);

// The bundle directory named by the arguments that follow create or run: `--bundle DIR`, `--bundle=DIR`,
// `-b DIR`, or crun's `-bDIR`; std::nullopt when absent (the runtime uses its current directory).
// Throws InputError for an option neither runc nor crun documents for these commands, for spellings the two
// read differently (`-bundle`, `-b=DIR`), and for crun's `--config FILE`: the hooks would go to a file the
// runtime does not read.
std::optional<std::string> find_bundle(std::span<const std::string_view> command_args);

} // namespace vmmcg::runtime
