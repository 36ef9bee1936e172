// The backend of v2 hosts. A thread can leave its process's cgroup only inside one threaded subtree
// (cgroup-v2.rst, "Threads"), so S becomes a threaded root with two threaded children: S/vcpu, which takes
// the container's CPU limits and the vCPU threads, and S/overhead, which takes every other thread. Memory,
// pids and io stay on S for the whole VMM. S's own cpu.max is lifted once vCPU threads are in S/vcpu.
#pragma once

#include <cstdint>
#include <memory>

#include "backend.h"
#include "layout.h"

namespace vmmcg::cgroup_v2 {

std::unique_ptr<Backend> make_backend(Layout &layout);

// v1 cpu.shares (2..262144) as v2 cpu.weight (1..10000), the conversion runc and crun use
// (runc's ConvertCPUSharesToCgroupV2Value); 0 stays 0 (unset).
std::uint64_t shares_to_weight(std::uint64_t shares);

} // namespace vmmcg::cgroup_v2
