#include "completion.h"

#include <algorithm>

namespace vmmcg {

bool CompletionRule::may_complete(const PassSummary &pass) const
{
	return !pass.retry && pass.vcpus > 0;
}

std::chrono::nanoseconds CompletionRule::until_quiet(std::uint64_t youngest,
						     std::chrono::nanoseconds at) const
{
	auto born = tick * static_cast<std::int64_t>(youngest + 1);
	return born + quiet - at;
}

bool CompletionRule::complete(const PassSummary &pass) const
{
	if (!may_complete(pass) || !pass.same_threads)
		return false;
	if (pass.qmp_vcpus && *pass.qmp_vcpus == pass.vcpus)
		return true;
	return until_quiet(pass.youngest, pass.read_at) <= std::chrono::nanoseconds(0);
}

std::optional<std::chrono::nanoseconds> CompletionRule::wait(const PassSummary &pass,
							     std::chrono::nanoseconds now) const
{
	if (!may_complete(pass) || !pass.same_threads || complete(pass))
		return std::nullopt;
	return std::max(until_quiet(pass.youngest, now), std::chrono::nanoseconds(0));
}

} // namespace vmmcg
