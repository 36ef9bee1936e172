#include "state.h"

#include <climits>

#include "errors.h"
#include "json_fields.h"
#include "paths.h"
#include "text.h"

namespace vmmcg {

State parse_state(std::string_view json)
{
	const std::string what = "state";
	nlohmann::json doc = parse_json_object(json, what);

	State state;
	state.oci_version = get_string(doc, "ociVersion", what).value_or("");
	state.status = get_string(doc, "status", what).value_or("");

	auto id = get_string(doc, "id", what);
	if (!id)
		throw InputError("state: field 'id': missing");
	if (!is_valid_container_id(*id))
		throw InputError("state: field 'id': '" + printable(*id) +
				 "' is not a container id (1-128 of [A-Za-z0-9_+.-], not '.' or '..')");
	state.id = *id;

	// A negative pid would address a process group; pid_t holds INT_MAX at most.
	state.pid = static_cast<pid_t>(get_integer(doc, "pid", what, 0, INT_MAX).value_or(0));

	auto bundle = get_string(doc, "bundle", what);
	if (!bundle)
		throw InputError("state: field 'bundle': missing");
	if (!is_clean_absolute(*bundle) || *bundle == "/")
		throw InputError("state: field 'bundle': '" + printable(*bundle) +
				 "' is not a clean absolute path");
	state.bundle = *bundle;

	state.annotations = get_string_map(doc, "annotations", what);
	return state;
}

} // namespace vmmcg
