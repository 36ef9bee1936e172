#include "kill_all.h"

#include <variant>

#include <spdlog/spdlog.h>

#include "cleanup.h"
#include "errors.h"
#include "layout.h"
#include "record.h"

namespace vmmcg::runtime {

namespace {

// `--all`, `-a`, `-all`, with an optional "=true"/"=false" as Go's flag package reads a boolean.
std::optional<bool> all_flag(std::string_view arg)
{
	arg.remove_prefix(arg.starts_with("--") ? 2 : 1);
	std::string_view value = "true";
	if (std::size_t eq = arg.find('='); eq != std::string_view::npos) {
		value = arg.substr(eq + 1);
		arg = arg.substr(0, eq);
	}
	if (arg != "all" && arg != "a")
		return std::nullopt;
	return value == "true" || value == "1";
}

} // namespace

std::optional<std::string> kill_all_target(std::span<const std::string_view> command_args)
{
	bool all = false;
	for (std::size_t i = 0; i < command_args.size(); ++i) {
		std::string_view arg = command_args[i];
		if (arg == "--") {
			if (i + 1 >= command_args.size())
				return std::nullopt;
			arg = command_args[i + 1];
		} else if (arg.size() > 1 && arg.front() == '-') {
			if (arg == "--regex" || arg == "-r" || arg == "-regex")
				return std::nullopt;
			if (auto flag = all_flag(arg))
				all = *flag;
			continue;
		}
		// The first positional argument is the id; runc and crun read no option after it.
		if (!all || arg.empty())
			return std::nullopt;
		return std::string(arg);
	}
	return std::nullopt;
}

Collapse collapse_for_kill_all(const std::string &record_dir, const std::string &id)
{
	Collapse result;
	for (const std::string &name : record_names(record_dir)) {
		// A record of one of its instances, or of version 1 (named "<id>").
		if (name != id && !is_instance_of(name, id))
			continue;
		std::optional<Record> record;
		try {
			record = read_record(record_dir, name, id);
		} catch (const HostError &e) {
			spdlog::error("{}: left as it is", e.what());
			++result.failures;
			continue;
		}
		if (!record || record->id != id ||
		    !std::holds_alternative<cgroup_v2::Layout>(record->cgroups))
			continue;
		result.failures += clean_up(record_dir, *record).failures;
		++result.collapsed;
	}
	return result;
}

} // namespace vmmcg::runtime
