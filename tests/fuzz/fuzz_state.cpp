// fuzz_state: vmmcg::parse_state (common/state.h) on arbitrary bytes, as a hook reads them from stdin.
// InputError is the documented refusal. Anything else (another exception, a sanitizer report, a broken
// invariant of an accepted state) is a finding.
#include <cstddef>
#include <cstdint>

#include "errors.h"
#include "fuzz_check.h"
#include "paths.h"
#include "state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using vmmcg::fuzz::check;
	std::string_view text = vmmcg::fuzz::as_text(data, size);
	if (text.size() > vmmcg::max_state_size)
		return -1; // the hooks never read more than this
	try {
		vmmcg::State state = vmmcg::parse_state(text);
		check(vmmcg::is_valid_container_id(state.id), "state.id is a valid container id", state.id);
		check(vmmcg::is_clean_absolute(state.bundle) && state.bundle != "/",
		      "state.bundle is a clean absolute path other than /", state.bundle);
		check(state.pid >= 0, "state.pid is not negative");
	} catch (const vmmcg::InputError &) {
	}
	return 0;
}
