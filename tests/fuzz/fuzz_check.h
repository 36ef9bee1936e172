// Shared by the harnesses: the input as text, and invariant checks. A broken invariant aborts, so libFuzzer
// reports it like a crash and saves the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace vmmcg::fuzz {

inline std::string_view as_text(const std::uint8_t *data, std::size_t size)
{
	return {reinterpret_cast<const char *>(data), size};
}

// Aborts with what was expected and the offending value when ok is false.
inline void check(bool ok, const char *expected, std::string_view value = {})
{
	if (ok)
		return;
	std::fprintf(stderr, "vmmcg-fuzz: invariant violated: %s (value: '%.*s')\n", expected,
		     static_cast<int>(value.size()), value.data());
	std::abort();
}

} // namespace vmmcg::fuzz
