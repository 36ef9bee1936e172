#include "proc_events.h"

#include <arpa/inet.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

namespace vmmcg {

namespace {

// Offsets in a datagram: nlmsghdr, then cn_msg, then proc_event (what, cpu, timestamp, event_data).
constexpr unsigned event_offset = NLMSG_HDRLEN + sizeof(struct cn_msg);
constexpr unsigned what_offset = event_offset + offsetof(struct proc_event, what);
constexpr unsigned fork_parent_tgid = event_offset + offsetof(struct proc_event, event_data.fork.parent_tgid);
constexpr unsigned fork_child_tgid = event_offset + offsetof(struct proc_event, event_data.fork.child_tgid);
// exec, comm and exit events all begin with process_pid, process_tgid.
constexpr unsigned process_tgid = event_offset + offsetof(struct proc_event, event_data.exec.process_tgid);
static_assert(offsetof(struct proc_event, event_data.comm.process_tgid) ==
	      offsetof(struct proc_event, event_data.exec.process_tgid));
static_assert(offsetof(struct proc_event, event_data.exit.process_tgid) ==
	      offsetof(struct proc_event, event_data.exec.process_tgid));

constexpr unsigned fork_event = proc_event::PROC_EVENT_FORK;
constexpr unsigned exec_event = proc_event::PROC_EVENT_EXEC;
constexpr unsigned comm_event = proc_event::PROC_EVENT_COMM;
constexpr unsigned exit_event = proc_event::PROC_EVENT_EXIT;

using Instruction = SocketFilterProgram::Instruction;

Instruction statement(unsigned short code, unsigned int k)
{
	return {code, 0, 0, k};
}

// Compares the loaded word with each tgid: classic BPF loads words in network byte order, the event
// fields are in the host's, so the constants are converted the same way.
void match_any(std::vector<Instruction> &program, unsigned offset, const std::vector<pid_t> &tgids,
	       std::vector<std::size_t> &to_accept)
{
	program.push_back(statement(BPF_LD | BPF_W | BPF_ABS, offset));
	for (pid_t tgid : tgids) {
		to_accept.push_back(program.size());
		program.push_back({BPF_JMP | BPF_JEQ | BPF_K, 0, 0, htonl(static_cast<unsigned int>(tgid))});
	}
}

} // namespace

SocketFilterProgram SocketFilterProgram::for_tgids(const std::vector<pid_t> &tgids)
{
	SocketFilterProgram filter;
	auto &p = filter.instructions;
	std::vector<std::size_t> to_accept, to_fork, to_process;
	p.push_back(statement(BPF_LD | BPF_W | BPF_ABS, what_offset));
	to_fork.push_back(p.size());
	p.push_back({BPF_JMP | BPF_JEQ | BPF_K, 0, 0, htonl(fork_event)});
	for (unsigned what : {exec_event, comm_event, exit_event}) {
		to_process.push_back(p.size());
		p.push_back({BPF_JMP | BPF_JEQ | BPF_K, 0, 0, htonl(what)});
	}
	p.push_back(statement(BPF_RET | BPF_K, 0)); // any other event
	std::size_t fork_block = p.size();
	match_any(p, fork_parent_tgid, tgids, to_accept);
	match_any(p, fork_child_tgid, tgids, to_accept);
	p.push_back(statement(BPF_RET | BPF_K, 0));
	std::size_t process_block = p.size();
	match_any(p, process_tgid, tgids, to_accept);
	p.push_back(statement(BPF_RET | BPF_K, 0));
	std::size_t accept = p.size();
	p.push_back(statement(BPF_RET | BPF_K, 0xffffffff));
	// Jumps are relative to the next instruction: jt when equal, fall through otherwise.
	auto jump = [&](std::size_t from, std::size_t to) {
		p[from].jt = static_cast<unsigned char>(to - from - 1);
	};
	for (std::size_t at : to_fork)
		jump(at, fork_block);
	for (std::size_t at : to_process)
		jump(at, process_block);
	for (std::size_t at : to_accept)
		jump(at, accept);
	return filter;
}

std::optional<ProcEvents> ProcEvents::open()
{
	UniqueFd fd(::socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR));
	if (!fd.valid())
		return std::nullopt;
	struct sockaddr_nl addr {};
	addr.nl_family = AF_NETLINK;
	addr.nl_groups = CN_IDX_PROC;
	if (::bind(fd.get(), reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0)
		return std::nullopt;
	ProcEvents events(std::move(fd));
	if (!events.watch({}))
		return std::nullopt;
	// nlmsghdr, cn_msg, then the operation: the subscription.
	alignas(struct nlmsghdr) char request[NLMSG_HDRLEN + sizeof(struct cn_msg) + sizeof(int)] = {};
	auto *header = reinterpret_cast<struct nlmsghdr *>(request);
	header->nlmsg_len = sizeof(request);
	header->nlmsg_type = NLMSG_DONE;
	header->nlmsg_pid = static_cast<__u32>(::getpid());
	struct cn_msg message {};
	message.id = {CN_IDX_PROC, CN_VAL_PROC};
	message.len = sizeof(int);
	std::memcpy(request + NLMSG_HDRLEN, &message, sizeof(message));
	int op = PROC_CN_MCAST_LISTEN;
	std::memcpy(request + NLMSG_HDRLEN + sizeof(message), &op, sizeof(op));
	if (::send(events.fd_.get(), request, sizeof(request), 0) != static_cast<ssize_t>(sizeof(request)))
		return std::nullopt;
	return events;
}

bool ProcEvents::watch(const std::vector<pid_t> &tgids)
{
	std::vector<pid_t> watched(tgids.begin(), tgids.begin() + std::min(tgids.size(), max_watched));
	SocketFilterProgram filter = SocketFilterProgram::for_tgids(watched);
	static_assert(sizeof(Instruction) == sizeof(struct sock_filter));
	struct sock_fprog program {};
	program.len = static_cast<unsigned short>(filter.instructions.size());
	program.filter = reinterpret_cast<struct sock_filter *>(filter.instructions.data());
	return ::setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) == 0;
}

std::optional<ProcEvent> ProcEvents::parse(const void *data, std::size_t size)
{
	// At least what, cpu, timestamp and the four pids of a fork event.
	if (size < fork_child_tgid + sizeof(__u32))
		return std::nullopt;
	struct proc_event event {};
	std::memcpy(&event, static_cast<const char *>(data) + event_offset,
		    std::min(size - event_offset, sizeof(event)));
	switch (event.what) {
	case proc_event::PROC_EVENT_FORK:
		return ProcEvent{ProcEvent::Kind::fork, event.event_data.fork.child_pid,
				 event.event_data.fork.child_tgid, event.event_data.fork.parent_tgid};
	case proc_event::PROC_EVENT_EXEC:
		return ProcEvent{ProcEvent::Kind::exec, event.event_data.exec.process_pid,
				 event.event_data.exec.process_tgid, 0};
	case proc_event::PROC_EVENT_COMM:
		return ProcEvent{ProcEvent::Kind::comm, event.event_data.comm.process_pid,
				 event.event_data.comm.process_tgid, 0};
	case proc_event::PROC_EVENT_EXIT:
		return ProcEvent{ProcEvent::Kind::exit, event.event_data.exit.process_pid,
				 event.event_data.exit.process_tgid, 0};
	default:
		return std::nullopt;
	}
}

std::vector<ProcEvent> ProcEvents::wait(std::chrono::milliseconds timeout, bool &lost)
{
	std::vector<ProcEvent> events;
	struct pollfd pfd {
		fd_.get(), POLLIN, 0
	};
	if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0)
		return events;
	alignas(struct nlmsghdr) char buf[4096];
	for (;;) {
		ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
		if (n < 0 && errno == ENOBUFS) {
			lost = true;
			continue;
		}
		if (n <= 0)
			return events; // EAGAIN: all read
		if (auto event = parse(buf, static_cast<std::size_t>(n)))
			events.push_back(*event);
	}
}

} // namespace vmmcg
