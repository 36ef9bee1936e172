#include "backend.h"

#include <algorithm>
#include <variant>

#include "cgroup_v1.h"
#include "cgroup_v2.h"

namespace vmmcg {

OverheadPolicy OverheadPolicy::from(const Config &config)
{
	return {config.overhead_limits, config.overhead_cap_percent, config.overhead_cap_min_millicpus};
}

std::optional<std::int64_t> OverheadPolicy::quota(std::optional<std::int64_t> container_quota,
						  std::uint64_t container_period, std::uint64_t period) const
{
	if (limits.quota_us)
		return *limits.quota_us;
	if (!container_quota || *container_quota <= 0 || container_period == 0 || cap_percent == 0)
		return std::nullopt;
	// In this period: the container's share of a CPU, times the percentage, and the floor.
	auto share = static_cast<double>(*container_quota) / static_cast<double>(container_period);
	double cpus = std::max(share * cap_percent / 100.0, cap_min_millicpus / 1000.0);
	return std::max<std::int64_t>(1000, static_cast<std::int64_t>(cpus * static_cast<double>(period)));
}

namespace {

// "a", "a and b", "a, b and c"
std::string join_names(const std::vector<std::string> &names)
{
	std::string out;
	for (std::size_t i = 0; i < names.size(); ++i) {
		if (i > 0)
			out += i + 1 == names.size() ? " and " : ", ";
		out += names[i];
	}
	return out;
}

} // namespace

std::string Teardown::summary() const
{
	std::string out;
	if (!removed.empty())
		out = "removed " + join_names(removed);
	if (!gone.empty())
		out += (out.empty() ? "" : "; ") + join_names(gone) +
		       (gone.size() == 1 ? " was removed already" : " were removed already");
	return out.empty() ? "nothing to remove" : out;
}

std::unique_ptr<Backend> make_backend(CgroupLayout &layout)
{
	if (auto *v1 = std::get_if<cgroup_v1::Layout>(&layout))
		return cgroup_v1::make_backend(*v1);
	if (auto *v2 = std::get_if<cgroup_v2::Layout>(&layout))
		return cgroup_v2::make_backend(*v2);
	return nullptr;
}

} // namespace vmmcg
