// Finding the VMM and its vCPU threads, by name, in /proc (procfs.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "procfs.h"

namespace vmmcg {

struct ThreadInfo {
	pid_t tid = 0;
	std::string name;             // the comm, from /proc/<pid>/task/<tid>/stat
	std::uint64_t start_time = 0; // clock ticks since boot, field 22 of the same line
	std::optional<int> vcpu;      // the vCPU index: from QMP, or the name matched a vCPU pattern
};

// fnmatch-style globs against the executable's base name, then the 15-character comm.
bool matches_vmm_name(const std::vector<std::string> &globs, std::string_view exe_name,
		      std::string_view comm);

// Whether a command line names a VMM: the base name of some word of some argument matches a glob. Words
// are split at blanks and shell punctuation, so `sh -c "exec /usr/bin/qemu-system-x86_64 -m 1"` names one
// and `sh -c "sleep 1d"` does not. For the bundle's process.args, before anything runs.
bool names_vmm(const std::vector<std::string> &globs, const std::vector<std::string> &args);

// "CPU {n}/KVM" matches "CPU 12/KVM" -> 12. nullopt when no pattern matches.
std::optional<int> match_vcpu_name(const std::vector<std::string> &patterns, std::string_view name);

// The VMM: pid itself if its name matches, else the first matching descendant, breadth first, at most
// max_depth generations down. nullopt if none (yet).
std::optional<ProcessRef> find_vmm(const ProcFs &proc, pid_t pid, const std::vector<std::string> &globs,
				   unsigned max_depth);
// The same from a process already known (the container's), whose stat is not read again before its names:
// it is returned only while its pid still names it.
std::optional<ProcessRef> find_vmm(const ProcFs &proc, const ProcessRef &root,
				   const std::vector<std::string> &globs, unsigned max_depth);

// The VMM's threads with their names, start times and vCPU indexes by name: one read of .../stat per thread.
// Threads that exit while they are listed are left out. More than max_threads: nothing read, ec E2BIG.
std::vector<ThreadInfo> list_threads(const ProcFs &proc, pid_t pid, const std::vector<std::string> &patterns,
				     std::error_code &ec, std::size_t max_threads = SIZE_MAX);
std::vector<ThreadInfo> list_threads(const TaskDir &tasks, const std::vector<std::string> &patterns,
				     std::error_code &ec, std::size_t max_threads = SIZE_MAX);

// The KVM file descriptors a process holds: anon_inode:kvm-vm, and one anon_inode:kvm-vcpu:N per vCPU.
struct KvmFds {
	bool vm = false;
	std::size_t vcpus = 0;
};
KvmFds count_kvm_fds(const ProcFs &proc, pid_t pid);

// Keeps the vCPU marks only where the proof holds (config.h VcpuProof): with `kvm`, the process holds a VM
// and at least as many vCPU fds as threads are marked; otherwise no thread is a vCPU, and nothing moves.
// `fds` is filled on first use and recounted only when more threads are marked than it proved.
bool prove_vcpus(const ProcFs &proc, pid_t pid, std::vector<ThreadInfo> &threads, std::optional<KvmFds> &fds);

// Marks exactly the threads in vcpu_tids (from QMP, in cpu-index order) as vCPUs: linear in threads, not
// threads x vCPUs.
void mark_vcpus(std::vector<ThreadInfo> &threads, const std::vector<pid_t> &vcpu_tids);

} // namespace vmmcg
