#include "wrapper_config.h"

#include <array>

#include "errors.h"
#include "invocation.h"
#include "json_fields.h"
#include "paths.h"

namespace vmmcg::runtime {

namespace {

const std::string what = "runtime.json";

constexpr std::array<std::string_view, 4> known_keys = {"runtime", "hook_dir", "hook_config",
							"hook_timeout_s"};

void check_keys(const nlohmann::json &doc)
{
	for (const auto &[key, value] : doc.items()) {
		bool known = false;
		for (std::string_view name : known_keys)
			known |= key == name;
		if (!known)
			throw InputError(what + ": field '" + key +
					 "': unknown (known: runtime, hook_dir, hook_config, "
					 "hook_timeout_s)");
	}
}

// A path field: absolute and unable to climb, since the wrapper runs it or passes it to a root process.
std::optional<std::string> get_path(const nlohmann::json &doc, const char *key)
{
	auto value = get_string(doc, key, what);
	if (value && !is_clean_absolute(*value))
		throw InputError(what + ": field '" + key + "': must be a clean absolute path, not '" +
				 *value + "'");
	return value;
}

} // namespace

const std::vector<std::string> &default_runtimes()
{
	static const std::vector<std::string> runtimes = {"/usr/bin/runc", "/usr/sbin/runc", "/usr/bin/crun"};
	return runtimes;
}

WrapperConfig parse_wrapper_config(std::string_view text, WrapperConfig defaults)
{
	nlohmann::json doc = parse_json_object(text, what);
	check_keys(doc);
	WrapperConfig config = std::move(defaults);
	if (auto runtime = get_path(doc, "runtime"))
		config.runtime = *runtime;
	if (auto dir = get_path(doc, "hook_dir"))
		config.hook_dir = *dir;
	if (auto hook_config = get_path(doc, "hook_config"))
		config.hook_config = *hook_config;
	if (auto timeout = get_integer(doc, "hook_timeout_s", what, 1, 300))
		config.hook_timeout_s = static_cast<int>(*timeout);
	return config;
}

LoadedConfig wrapper_config_for(std::string_view command,
				const std::function<std::optional<std::string>()> &read,
				WrapperConfig defaults)
{
	LoadedConfig loaded{defaults, std::nullopt};
	try {
		if (std::optional<std::string> text = read())
			loaded.config = parse_wrapper_config(*text, std::move(defaults));
	} catch (const std::exception &e) {
		if (edits_bundle(command))
			throw;
		loaded.problem = e.what();
	}
	return loaded;
}

std::string choose_runtime(const WrapperConfig &config,
			   const std::function<bool(const std::string &)> &executable)
{
	if (config.runtime)
		return *config.runtime;
	for (const auto &path : default_runtimes())
		if (executable(path))
			return path;
	throw InputError(
		"no runtime: none of /usr/bin/runc, /usr/sbin/runc, /usr/bin/crun is executable; name "
		"one as \"runtime\" in runtime.json");
}

HookSettings hook_settings(const WrapperConfig &config)
{
	HookSettings settings;
	settings.create_runtime = join_path(config.hook_dir, "vmm-cgroup-create-runtime");
	settings.poststart = join_path(config.hook_dir, "vmm-cgroup-poststart");
	settings.poststop = join_path(config.hook_dir, "vmm-cgroup-poststop");
	settings.config = config.hook_config;
	settings.timeout_s = config.hook_timeout_s;
	return settings;
}

} // namespace vmmcg::runtime
