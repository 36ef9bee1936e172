#include "spec_hooks.h"

#include <array>
#include <utility>

#include "errors.h"

namespace vmmcg::runtime {

namespace {

const std::string what = "config.json";

// The environment of the hooks, as the oci-hooks.d files give it: runc and crun pass a hook exactly the
// `env` it has, nothing when it has none.
constexpr std::string_view hook_path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

Spec hook_entry(const std::string &path, const HookSettings &settings)
{
	Spec args = Spec::array({path});
	if (settings.config) {
		args.push_back("--config");
		args.push_back(*settings.config);
	}
	args.push_back(gate_argument);
	return Spec{{"path", path},
		    {"args", std::move(args)},
		    {"env", Spec::array({hook_path_env})},
		    {"timeout", settings.timeout_s}};
}

// spec[key] as an object, created when absent; InputError when it is something else.
Spec &object_member(Spec &parent, const char *key, const std::string &where)
{
	auto it = parent.find(key);
	if (it == parent.end() || it->is_null())
		return parent[key] = Spec::object();
	if (!it->is_object())
		throw InputError(what + ": field '" + where + "': must be an object");
	return *it;
}

Spec &array_member(Spec &parent, const char *key, const std::string &where)
{
	auto it = parent.find(key);
	if (it == parent.end() || it->is_null())
		return parent[key] = Spec::array();
	if (!it->is_array())
		throw InputError(what + ": field '" + where + "': must be an array");
	return *it;
}

// Puts entry into a stage's list: over the entry with the same path when there is one, else at the end
// (after the hooks the engine or other tools put there). Returns whether the list changed.
bool place_hook(Spec &stage, Spec entry)
{
	for (auto &existing : stage) {
		auto path = existing.find("path");
		if (existing.is_object() && path != existing.end() && *path == entry["path"]) {
			if (existing == entry)
				return false;
			existing = std::move(entry);
			return true;
		}
	}
	stage.push_back(std::move(entry));
	return true;
}

bool annotation_is(const Spec &spec, const char *key, std::string_view value)
{
	auto annotations = spec.find("annotations");
	if (annotations == spec.end() || !annotations->is_object())
		return false;
	auto it = annotations->find(key);
	return it != annotations->end() && it->is_string() && it->get_ref<const std::string &>() == value;
}

// `annotations` is left as it is, but of the wrong type the runtime would refuse the spec anyway, and
// is_pod_sandbox could not have read it: refused here, before the runtime runs.
void check_annotations(const Spec &spec)
{
	auto it = spec.find("annotations");
	if (it != spec.end() && !it->is_null() && !it->is_object())
		throw InputError(what + ": field 'annotations': must be an object");
}

} // namespace

Spec parse_spec(std::string_view text)
{
	Spec spec = Spec::parse(text, nullptr, false);
	if (spec.is_discarded())
		throw InputError(what + ": not valid JSON" + (text.empty() ? " (empty file)" : ""));
	if (!spec.is_object())
		throw InputError(what + ": must be a JSON object");
	return spec;
}

bool is_pod_sandbox(const Spec &spec)
{
	return annotation_is(spec, "io.kubernetes.cri.container-type", "sandbox") ||
	       annotation_is(spec, "io.kubernetes.cri-o.ContainerType", "sandbox");
}

bool add_hooks(Spec &spec, const HookSettings &settings)
{
	const std::array<std::pair<const char *, const std::string *>, 3> stages = {{
		{"createRuntime", &settings.create_runtime},
		{"poststart", &settings.poststart},
		{"poststop", &settings.poststop},
	}};
	check_annotations(spec);
	Spec &hooks = object_member(spec, "hooks", "hooks");
	bool changed = false;
	for (const auto &[stage, path] : stages) {
		Spec &list = array_member(hooks, stage, std::string("hooks.") + stage);
		changed |= place_hook(list, hook_entry(*path, settings));
	}
	return changed;
}

} // namespace vmmcg::runtime
