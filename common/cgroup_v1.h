// The backend of v1 and hybrid hosts: O = <overhead_root>/<id> in each hierarchy holding an overhead
// controller. The VMM process goes to O with one write to cgroup.procs (atomic for the thread group), then
// each vCPU thread back to S through `tasks`. Every other hierarchy is left alone, so the container's
// memory, device and freezer semantics are untouched.
#pragma once

#include <memory>

#include "backend.h"
#include "layout.h"

namespace vmmcg::cgroup_v1 {

std::unique_ptr<Backend> make_backend(Layout &layout);

} // namespace vmmcg::cgroup_v1
