#include "invocation.h"

#include <algorithm>
#include <array>

#include "errors.h"

namespace vmmcg::runtime {

namespace {

// runc 1.1 (urfave/cli) and crun 1.8 (argp) global options that take a value; the others are flags
// (--debug, --systemd-cgroup, --help, --version).
constexpr std::array<std::string_view, 7> global_value_options = {
	"root", "log", "log-format", "criu", "rootless", "cgroup-manager", "log-level",
};

// Options of create and run in runc 1.1/1.2 and crun 1.8+.
constexpr std::array<std::string_view, 5> command_value_options = {
	"bundle", "console-socket", "pid-file", "preserve-fds", "pidfd-socket",
};
constexpr std::array<std::string_view, 6> command_flags = {
	"no-pivot", "no-new-keyring", "no-subreaper", "detach", "keep", "help",
};

template <std::size_t N>
bool contains(const std::array<std::string_view, N> &names, std::string_view name)
{
	return std::find(names.begin(), names.end(), name) != names.end();
}

// An option as "name" and, when written "name=value", its value; leading dashes removed.
struct Option {
	std::string_view name;
	std::optional<std::string_view> value;
};

Option split_option(std::string_view arg)
{
	arg.remove_prefix(arg.starts_with("--") ? 2 : 1);
	std::size_t eq = arg.find('=');
	if (eq == std::string_view::npos)
		return {arg, std::nullopt};
	return {arg.substr(0, eq), arg.substr(eq + 1)};
}

bool is_option(std::string_view arg)
{
	return arg.size() > 1 && arg.front() == '-';
}

// The value of the option at args[i]: attached ("--x=v") or the next argument, which is consumed.
std::string_view option_value(std::span<const std::string_view> args, std::size_t &i, const Option &option)
{
	if (option.value)
		return *option.value;
	if (i + 1 >= args.size())
		throw InputError("argument '" + std::string(args[i]) + "': missing its value");
	return args[++i];
}

void read_global(Invocation &inv, std::span<const std::string_view> args, std::size_t &i)
{
	Option option = split_option(args[i]);
	if (!contains(global_value_options, option.name))
		return;
	std::string_view value = option_value(args, i, option);
	if (option.name == "log")
		inv.log_path = std::string(value);
	else if (option.name == "log-format")
		inv.log_format = std::string(value);
}

[[noreturn]] void refuse(std::string_view arg, const std::string &why)
{
	throw InputError("argument '" + std::string(arg) + "': " + why);
}

// A one-dash argument longer than "-x": crun (argp) reads "-bDIR" as -b DIR, runc (Go's flag package) reads
// "-bundle" as --bundle. Returns the bundle it names, if any; the caller handles the other spellings.
std::optional<std::string_view> short_bundle(std::string_view arg)
{
	if (arg.starts_with("-bundle") || arg.starts_with("-b="))
		refuse(arg, "runc and crun read this spelling differently; use --bundle DIR");
	if (arg.starts_with("-f"))
		refuse(arg, "crun's --config is not supported: the hooks go to <bundle>/config.json");
	if (arg.starts_with("-b"))
		return arg.substr(2);
	return std::nullopt;
}

// Handles one option of create or run at args[i]; sets bundle when it names one.
void read_command_option(std::span<const std::string_view> args, std::size_t &i,
			 std::optional<std::string> &bundle)
{
	std::string_view arg = args[i];
	bool long_form = arg.starts_with("--");
	if (!long_form && arg.size() > 2)
		if (auto attached = short_bundle(arg)) {
			bundle = std::string(*attached);
			return;
		}
	Option option = split_option(arg);
	if (option.name == "config" || option.name == "f")
		refuse(arg, "crun's --config is not supported: the hooks go to <bundle>/config.json");
	if (option.name == "bundle" || option.name == "b")
		bundle = std::string(option_value(args, i, option));
	else if (contains(command_value_options, option.name))
		(void)option_value(args, i, option);
	else if (!contains(command_flags, option.name) && option.name != "d" && option.name != "h")
		refuse(arg, "unknown option of create/run (it might name another bundle)");
}

} // namespace

Invocation parse_invocation(std::span<const std::string_view> args)
{
	Invocation inv;
	for (std::size_t i = 0; i < args.size(); ++i) {
		if (args[i] == "--")
			continue;
		if (!is_option(args[i])) {
			inv.command_index = i;
			inv.command = std::string(args[i]);
			break;
		}
		read_global(inv, args, i);
	}
	return inv;
}

bool edits_bundle(std::string_view command)
{
	return command == "create" || command == "run";
}

std::optional<std::string> find_bundle(std::span<const std::string_view> command_args)
{
	std::optional<std::string> bundle;
	for (std::size_t i = 0; i < command_args.size(); ++i) {
		if (command_args[i] == "--")
			break; // the rest is positional (the container id)
		if (is_option(command_args[i]))
			read_command_option(command_args, i, bundle);
	}
	if (bundle && bundle->empty())
		throw InputError("argument --bundle: empty");
	return bundle;
}

} // namespace vmmcg::runtime
