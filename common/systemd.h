// Where systemd owns a unit's cgroup attributes, they are changed through systemd, not behind its back: a
// daemon-reload or a set-property writes systemd's own view back (runc hands a container's CPU limit to
// systemd as CPUQuota= on its scope). The hooks are static executables; libsystemd's sd-bus serves in a
// small helper executable (hooks/vmm_cgroup_systemd.cpp) the hooks run only on systemd hosts, only when
// systemd must be told something.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmmcg {

// systemd is the init system (/run/systemd/system exists, as sd_booted() checks).
bool systemd_running();

// The unit a cgroup is, when its last component names one ("libpod-x.scope", "crio-y.scope"); nullopt
// for a cgroup inside a unit (crun's ".../libpod-x.scope/container") or outside systemd's names.
std::optional<std::string> unit_of_cgroup(std::string_view cgroup);

// The helper's commands; each returns true when systemd did it.
// The unit's CPU quota to infinity (SetUnitProperties, runtime): its cgroup's cpu.max becomes "max" and
// stays so across daemon-reload.
bool set_unit_cpu_quota_infinity(const std::string &unit);
// The unit's CPU quota back to per_second_usec (CPUQuotaPerSecUSec): a cpu.max of "quota period" is
// quota * 1000000 / period of it.
bool set_unit_cpu_quota(const std::string &unit, std::uint64_t per_second_usec);
// The process into a new transient scope of its own in vmm-cgroup-hooks.slice (StartTransientUnit): it no
// longer dies with the unit that started it (the engine's), and the scope bounds its CPU.
bool move_to_own_scope(pid_t pid, const std::string &name);

} // namespace vmmcg
