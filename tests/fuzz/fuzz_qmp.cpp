// fuzz_qmp: the QMP parsers (common/qmp.h) on arbitrary bytes: vmmcg::parse_query_cpus_fast on the input as
// one reply line from the VMM (whose QMP socket the container creator controls), and
// vmmcg::parse_innermost_nspid on it as a /proc/<pid>/task/<tid>/status text. Neither throws by contract
// (std::nullopt is the refusal), so no exception is caught: any exception or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "qmp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using vmmcg::fuzz::check;
	std::string_view text = vmmcg::fuzz::as_text(data, size);
	if (text.size() > 64 * 1024)
		return -1; // QmpLimits::max_response

	if (auto cpus = vmmcg::parse_query_cpus_fast(text))
		for (const auto &cpu : *cpus) {
			check(cpu.index >= 0, "a cpu-index is not negative");
			check(cpu.thread_id > 0, "a thread-id is positive");
		}

	if (auto id = vmmcg::parse_innermost_nspid(text))
		check(*id > 0, "an NSpid is positive");
	return 0;
}
