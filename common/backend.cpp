#include "backend.h"

#include "cgroup_v1.h"
#include "cgroup_v2.h"

namespace vmmcg {

std::unique_ptr<Backend> make_backend(CgroupLayout &layout)
{
	if (auto *v1 = std::get_if<cgroup_v1::Layout>(&layout))
		return cgroup_v1::make_backend(*v1);
	if (auto *v2 = std::get_if<cgroup_v2::Layout>(&layout))
		return cgroup_v2::make_backend(*v2);
	return nullptr;
}

} // namespace vmmcg
