// vCPU discovery over QMP (QEMU Machine Protocol): `qmp_capabilities`, then `query-cpus-fast`, which
// reports each vCPU's thread id. The socket path is the container creator's, so everything about it is
// hostile until checked: it is resolved inside the VMM's root (openat2 RESOLVE_IN_ROOT on /proc/<pid>/root,
// no magic links), must be a socket, and the exchange has connect, read and total time limits and a size
// limit. The ids QMP reports are in the VMM's pid namespace: they are mapped to host ids through the NSpid
// lines of /proc/<vmm>/task/<tid>/status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "procfs.h"

namespace vmmcg {

struct QmpCpu {
	int index = 0;
	pid_t thread_id = 0; // in the VMM's pid namespace
};

// Parses one QMP reply line to query-cpus-fast: {"return": [{"cpu-index": 0, "thread-id": 123, ...}, ...]}.
// std::nullopt if it is not such a reply (an event, an error, garbage).
std::optional<std::vector<QmpCpu>> parse_query_cpus_fast(std::string_view line);

// Parses the NSpid line of a /proc/<pid>/task/<tid>/status text: the innermost namespace's id (last field).
std::optional<pid_t> parse_innermost_nspid(std::string_view status);

struct QmpLimits {
	std::chrono::milliseconds total{1000};
	std::size_t max_response = 64 * 1024;
};

// Why a QMP exchange gave no answer (one line, for the log): the peer is the container's, so this is an
// outcome the caller expects and falls back from (to thread names), not an error that ends a hook.
class QmpError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

// Asks the VMM's QMP socket for its vCPU threads, in cpu-index order, mapped to host thread ids. Throws
// QmpError on any failure.
// Only the VMM itself may answer: the peer of the socket (SO_PEERCRED) must be its process.
std::vector<pid_t> query_vcpu_threads(const ProcFs &proc, const ProcessRef &vmm,
				      const std::string &socket_path, const QmpLimits &limits);

} // namespace vmmcg
