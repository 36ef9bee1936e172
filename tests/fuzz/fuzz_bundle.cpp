// fuzz_bundle: vmmcg::parse_bundle_config on the input as a bundle's config.json, and
// vmmcg::parse_cgroups_path on the same bytes as a linux.cgroupsPath value (common/bundle.h).
// InputError is the documented refusal; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bundle.h"
#include "errors.h"
#include "fuzz_check.h"
#include "paths.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

using vmmcg::fuzz::check;

bool is_unit_part(std::string_view part)
{
	return part.find('/') == std::string_view::npos && part.find('\0') == std::string_view::npos;
}

// What bundle.h promises of an accepted cgroupsPath, given the text it came from.
void check_cgroups_path(const vmmcg::CgroupsPath &path, std::string_view text)
{
	using Kind = vmmcg::CgroupsPath::Kind;
	switch (path.kind) {
	case Kind::none:
		check(text.empty(), "kind none only for an empty cgroupsPath", text);
		break;
	case Kind::absolute:
		check(text.starts_with('/') && path.path == text, "an absolute path is the text as given",
		      text);
		check(vmmcg::is_clean_absolute(path.path) && path.path != "/",
		      "an absolute cgroupsPath is clean and not /", path.path);
		break;
	case Kind::relative:
		check(!text.starts_with('/') && path.path == text, "a relative path is the text as given",
		      text);
		check(vmmcg::is_clean_absolute("/" + path.path), "a relative cgroupsPath is clean",
		      path.path);
		break;
	case Kind::systemd:
		check(path.slice + ":" + path.prefix + ":" + path.name == text,
		      "slice:prefix:name puts the text back together", text);
		check(is_unit_part(path.slice) && is_unit_part(path.prefix) && is_unit_part(path.name),
		      "systemd parts hold no '/' or NUL", text);
		check(!path.name.empty(), "the systemd name is not empty", text);
		check(path.slice.empty() || path.slice.ends_with(".slice"),
		      "a systemd slice ends with .slice", path.slice);
		check(path.slice.find(':') == std::string::npos &&
			      path.prefix.find(':') == std::string::npos &&
			      path.name.find(':') == std::string::npos,
		      "systemd parts hold no ':'", text);
		break;
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	std::string_view text = vmmcg::fuzz::as_text(data, size);
	if (text.size() > vmmcg::max_bundle_config_size)
		return -1;

	try {
		vmmcg::BundleConfig config = vmmcg::parse_bundle_config(text);
		const vmmcg::CgroupsPath &path = config.cgroups_path;
		check_cgroups_path(path, path.kind == vmmcg::CgroupsPath::Kind::systemd
						 ? path.slice + ":" + path.prefix + ":" + path.name
						 : path.path);
	} catch (const vmmcg::InputError &) {
	}

	try {
		check_cgroups_path(vmmcg::parse_cgroups_path(text), text);
	} catch (const vmmcg::InputError &) {
	}
	return 0;
}
