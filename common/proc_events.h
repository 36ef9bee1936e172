// The kernel's process events connector (netlink NETLINK_CONNECTOR, CN_IDX_PROC): a fork (a thread or a
// process made), an exec, a name change (comm) or an exit, as it happens. The watcher sleeps on it rather
// than polling /proc: a VMM's new vCPU thread (hotplug), a thread that names itself late, the container's
// process that execs the VMM (runc runs poststart before exec) wake it at once. A socket filter in the
// kernel passes only the events of the thread groups being watched, so other processes of the node cost
// the watcher nothing. Needs CAP_NET_ADMIN in the initial user namespace; where it is refused, the watcher
// polls instead.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <vector>

#include "unique_fd.h"

namespace vmmcg {

struct ProcEvent {
	enum class Kind { fork, exec, comm, exit };
	Kind kind = Kind::fork;
	pid_t pid = 0;         // the task the event is about (fork: the new one)
	pid_t tgid = 0;        // its thread group (fork: the new task's)
	pid_t parent_tgid = 0; // fork: the thread group that made it
};

// The filter of one watch set: the classic BPF program, built from values only (unit-tested).
struct SocketFilterProgram {
	struct Instruction {
		unsigned short code;
		unsigned char jt, jf;
		unsigned int k;
	};
	std::vector<Instruction> instructions;
	// Passes fork events whose parent or child thread group is in tgids, and exec, comm and exit events
	// of those thread groups; drops everything else.
	static SocketFilterProgram for_tgids(const std::vector<pid_t> &tgids);
};

class ProcEvents
{
public:
	// The connector, subscribed; nullopt where the kernel refuses it (no CAP_NET_ADMIN, a user
	// namespace).
	static std::optional<ProcEvents> open();

	// Only events of these thread groups (at most max_watched) reach this socket from now on.
	static constexpr std::size_t max_watched = 16;
	bool watch(const std::vector<pid_t> &tgids);

	// The events that arrive within timeout (none on timeout). `lost` is set when the kernel dropped
	// events (the socket's buffer overran): the caller rescans.
	std::vector<ProcEvent> wait(std::chrono::milliseconds timeout, bool &lost);

	// Parses one datagram of the connector (a netlink message with a cn_msg and a proc_event).
	static std::optional<ProcEvent> parse(const void *data, std::size_t size);

private:
	explicit ProcEvents(UniqueFd fd) : fd_(std::move(fd)) {}
	UniqueFd fd_;
};

} // namespace vmmcg
