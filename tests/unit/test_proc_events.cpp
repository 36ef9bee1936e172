#include "proc_events.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include <doctest/doctest.h>

using namespace vmmcg;

namespace {

// A datagram as the connector sends it: nlmsghdr, cn_msg, proc_event.
struct Datagram {
	alignas(struct nlmsghdr) unsigned char bytes[NLMSG_HDRLEN + sizeof(struct cn_msg) +
						     sizeof(struct proc_event)] = {};

	// The event sits at offset 36, not aligned for its 8-byte fields (as in the kernel's datagram):
	// copied in, never referenced in place.
	void set(const struct proc_event &event)
	{
		std::memcpy(bytes + NLMSG_HDRLEN + sizeof(struct cn_msg), &event, sizeof(event));
	}
};

Datagram fork_event(pid_t parent_tgid, pid_t child_pid, pid_t child_tgid)
{
	struct proc_event event {};
	event.what = proc_event::PROC_EVENT_FORK;
	event.event_data.fork.parent_pid = parent_tgid;
	event.event_data.fork.parent_tgid = parent_tgid;
	event.event_data.fork.child_pid = child_pid;
	event.event_data.fork.child_tgid = child_tgid;
	Datagram d;
	d.set(event);
	return d;
}

Datagram process_event(enum proc_event::what what, pid_t pid, pid_t tgid)
{
	struct proc_event event {};
	event.what = what;
	// exec, comm and exit events all begin with process_pid, process_tgid.
	event.event_data.exec.process_pid = pid;
	event.event_data.exec.process_tgid = tgid;
	Datagram d;
	d.set(event);
	return d;
}

// Runs the program as the kernel runs a classic socket filter, for the instructions for_tgids emits:
// what it returns is how many bytes of the datagram pass (0: dropped). Anything else fails the test.
unsigned run(const SocketFilterProgram &filter, const Datagram &d)
{
	const auto &p = filter.instructions;
	unsigned accumulator = 0;
	for (std::size_t pc = 0; pc < p.size(); ++pc) {
		const auto &insn = p[pc];
		switch (insn.code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (insn.k + 4 > sizeof(d.bytes))
				return 0;
			// Network byte order, as the kernel loads words.
			accumulator = unsigned(d.bytes[insn.k]) << 24 | unsigned(d.bytes[insn.k + 1]) << 16 |
				      unsigned(d.bytes[insn.k + 2]) << 8 | unsigned(d.bytes[insn.k + 3]);
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += accumulator == insn.k ? insn.jt : insn.jf;
			break;
		case BPF_RET | BPF_K:
			return insn.k;
		default:
			FAIL("unexpected instruction " << insn.code);
			return 0;
		}
	}
	FAIL("the program ran off its end");
	return 0;
}

bool passes(const SocketFilterProgram &filter, const Datagram &d)
{
	return run(filter, d) != 0;
}

} // namespace

TEST_SUITE("proc_events")
{
	TEST_CASE("the socket filter passes the events of the watched thread groups only")
	{
		SocketFilterProgram filter = SocketFilterProgram::for_tgids({4242, 77});
		CHECK(passes(filter, fork_event(4242, 4250, 4242))); // a new thread of a watched VMM
		CHECK(passes(filter, fork_event(77, 90, 90)));       // a child process of a watched one
		CHECK(passes(filter, fork_event(1, 77, 77)));        // the child is watched
		CHECK_FALSE(passes(filter, fork_event(1, 500, 500)));
		for (auto what : {proc_event::PROC_EVENT_EXEC, proc_event::PROC_EVENT_COMM,
				  proc_event::PROC_EVENT_EXIT}) {
			unsigned code = what;
			CAPTURE(code);
			CHECK(passes(filter, process_event(what, 4250, 4242)));
			CHECK(passes(filter, process_event(what, 77, 77)));
			CHECK_FALSE(passes(filter, process_event(what, 4243, 4243)));
		}
		// Events the watcher does not use are dropped, even of a watched thread group.
		CHECK_FALSE(passes(filter, process_event(proc_event::PROC_EVENT_UID, 4242, 4242)));
		CHECK_FALSE(passes(filter, process_event(proc_event::PROC_EVENT_NONE, 4242, 4242)));
	}

	TEST_CASE("the socket filter of an empty watch set drops everything")
	{
		SocketFilterProgram filter = SocketFilterProgram::for_tgids({});
		CHECK_FALSE(passes(filter, fork_event(4242, 4250, 4242)));
		CHECK_FALSE(passes(filter, process_event(proc_event::PROC_EVENT_EXIT, 4242, 4242)));
	}

	TEST_CASE("the socket filter of the largest watch set: every jump reaches its target")
	{
		std::vector<pid_t> tgids;
		for (pid_t tgid = 1000; tgid < 1000 + pid_t(ProcEvents::max_watched); ++tgid)
			tgids.push_back(tgid);
		SocketFilterProgram filter = SocketFilterProgram::for_tgids(tgids);
		for (pid_t tgid : tgids) {
			CAPTURE(tgid);
			CHECK(passes(filter, fork_event(tgid, 5000, tgid)));
			CHECK(passes(filter, fork_event(1, tgid, tgid)));
			CHECK(passes(filter, process_event(proc_event::PROC_EVENT_COMM, tgid, tgid)));
		}
		CHECK_FALSE(passes(filter, fork_event(999, 5000, 999)));
		CHECK_FALSE(passes(filter, process_event(proc_event::PROC_EVENT_EXIT, 1016, 1016)));
	}

	TEST_CASE("parse: the task and thread groups of each event; anything short or else is nothing")
	{
		Datagram fork = fork_event(4242, 4250, 4242);
		std::optional<ProcEvent> event = ProcEvents::parse(fork.bytes, sizeof(fork.bytes));
		REQUIRE(event);
		CHECK(event->kind == ProcEvent::Kind::fork);
		CHECK(event->pid == 4250);
		CHECK(event->tgid == 4242);
		CHECK(event->parent_tgid == 4242);
		Datagram comm = process_event(proc_event::PROC_EVENT_COMM, 4251, 4242);
		event = ProcEvents::parse(comm.bytes, sizeof(comm.bytes));
		REQUIRE(event);
		CHECK(event->kind == ProcEvent::Kind::comm);
		CHECK(event->pid == 4251);
		CHECK(event->tgid == 4242);
		CHECK_FALSE(ProcEvents::parse(fork.bytes, 8));
		Datagram uid = process_event(proc_event::PROC_EVENT_UID, 4242, 4242);
		CHECK_FALSE(ProcEvents::parse(uid.bytes, sizeof(uid.bytes)));
	}
}
