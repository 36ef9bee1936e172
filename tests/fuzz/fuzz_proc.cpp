// fuzz_proc: the parsers of kernel-written text (and of thread names a container chooses):
//   vmmcg::parse_proc_cgroup (common/host.h), vmmcg::parse_stat_start_time, vmmcg::parse_stat_state,
//   vmmcg::match_vcpu_name (common/discovery.h), vmmcg::parse_ids (common/cgroupfs.h).
//
// Input: the whole input goes to each parser. For match_vcpu_name the input is a thread name matched against
// the default patterns; when it holds a NUL, the part before it is one pattern per line and the part after
// it the name.
// InputError (parse_proc_cgroup) is the documented refusal; anything else is a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cgroupfs.h"
#include "config.h"
#include "discovery.h"
#include "procfs.h"
#include "errors.h"
#include "fuzz_check.h"
#include "host.h"
#include "paths.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

using vmmcg::fuzz::check;

std::vector<std::string> split_lines(std::string_view text)
{
	std::vector<std::string> out;
	while (!text.empty()) {
		std::size_t eol = text.find('\n');
		out.emplace_back(text.substr(0, eol));
		text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
	}
	return out;
}

void fuzz_vcpu_name(const std::vector<std::string> &patterns, std::string_view name)
{
	auto index = vmmcg::match_vcpu_name(patterns, name);
	if (!index)
		return;
	check(*index >= 0, "a vCPU index is not negative", name);
	// A match is exact: some pattern with {n} replaced by the index, in decimal, is the name.
	bool exact = std::any_of(patterns.begin(), patterns.end(), [&](const std::string &pattern) {
		std::size_t at = pattern.find("{n}");
		return at != std::string::npos &&
		       pattern.substr(0, at) + std::to_string(*index) + pattern.substr(at + 3) == name;
	});
	check(exact, "a matched name is a pattern with {n} replaced by the index in decimal", name);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	std::string_view text = vmmcg::fuzz::as_text(data, size);
	if (text.size() > (1 << 20))
		return -1; // the hooks read /proc files up to 1 MiB

	try {
		vmmcg::ProcCgroups cgroups = vmmcg::parse_proc_cgroup(text);
		for (const auto &[controller, path] : cgroups) {
			check(vmmcg::is_clean_absolute(path), "a membership path is clean and absolute",
			      path);
			check(controller.find(',') == std::string::npos, "a controller name holds no ','",
			      controller);
		}
	} catch (const vmmcg::InputError &) {
	}

	if (auto stat = vmmcg::parse_stat(text)) {
		check(text.find(')') != std::string_view::npos, "stat fields are found only after a ')'",
		      text);
		check(stat->comm.size() < text.size(), "the comm lies within the line", text);
	}

	std::vector<pid_t> ids = vmmcg::parse_ids(text);
	for (pid_t id : ids)
		check(id > 0, "an id is positive");
	check(ids.size() <= static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1,
	      "at most one id per line");

	static const std::vector<std::string> default_patterns = vmmcg::Config{}.vcpu_thread_patterns;
	std::size_t nul = text.find('\0');
	if (nul == std::string_view::npos)
		fuzz_vcpu_name(default_patterns, text);
	else
		fuzz_vcpu_name(split_lines(text.substr(0, nul)), text.substr(nul + 1));
	return 0;
}
