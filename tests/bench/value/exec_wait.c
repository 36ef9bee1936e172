// Prototypes of what a waiting settler could do instead of polling with backoff: each waits for process
// PID to exec (runc's init becoming the VMM) and reports when it noticed and what the wait cost in CPU.
// The value benchmark (run_value.py) runs each in the runc flow and compares them with the hooks' settler.
//
//   exec-wait MODE PID TIMEOUT_MS [PERIOD_MS]
//     poll          readlink /proc/PID/exe every PERIOD_MS until it changes: a short fixed period
//     backoff       the same read, 5 ms doubling to 250 ms: the hooks' settle today (common/placement.cpp)
//     netlink       the kernel's process events connector (CN_IDX_PROC; CAP_NET_ADMIN): woken by every
//                   fork, exec, exit and comm change on the host, until PID's exec
//     netlink-exec  the same, asking the kernel for exec events only (struct proc_input, Linux 6.6 and
//                   later; older kernels ignore the request: no events, the timeout)
//
// Once it waits, it prints "waiting cpu_ns <CPU time so far>" on stdout; at the exec (or the timeout):
//   detected <CLOCK_MONOTONIC ns> wakeups <n> events <n> cpu_ns <its CPU time, CLOCK_PROCESS_CPUTIME_ID>
// ("timeout" instead of "detected" when PID did not exec in time; exit status 1).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static int exe_of(int pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	ssize_t n = readlink(path, buf, size - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static void report(int found, uint64_t wakeups, uint64_t events)
{
	printf("%s %llu wakeups %llu events %llu cpu_ns %llu\n", found ? "detected" : "timeout",
	       (unsigned long long)clock_ns(CLOCK_MONOTONIC), (unsigned long long)wakeups,
	       (unsigned long long)events, (unsigned long long)clock_ns(CLOCK_PROCESS_CPUTIME_ID));
	fflush(stdout);
}

static void waiting(void)
{
	printf("waiting cpu_ns %llu\n", (unsigned long long)clock_ns(CLOCK_PROCESS_CPUTIME_ID));
	fflush(stdout);
}

static int wait_polling(int pid, long timeout_ms, long period_ms, int backoff)
{
	char first[4096], now[4096];
	if (exe_of(pid, first, sizeof(first)) != 0)
		return 2;
	waiting();
	uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u, wakeups = 0;
	long delay = backoff ? 5 : period_ms;
	for (;;) {
		++wakeups;
		if (exe_of(pid, now, sizeof(now)) == 0 && strcmp(now, first) != 0) {
			report(1, wakeups, 0);
			return 0;
		}
		if (clock_ns(CLOCK_MONOTONIC) >= deadline) {
			report(0, wakeups, 0);
			return 1;
		}
		sleep_ms(delay);
		if (backoff && (delay *= 2) > 250)
			delay = 250;
	}
}

struct proc_input_6_6 { // struct proc_input of Linux 6.6 (not in Debian 12's headers)
	uint32_t mcast_op;
	uint32_t event_type;
};

static int wait_netlink(int pid, long timeout_ms, int exec_only)
{
	int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (sock < 0)
		return 2;
	struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	if (bind(sock, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		return 2;
	// nlmsghdr, cn_msg, then the operation: a bare enum, or Linux 6.6's struct proc_input.
	char request[NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(struct proc_input_6_6))] __attribute__((aligned(8)));
	memset(request, 0, sizeof(request));
	uint16_t payload = exec_only ? sizeof(struct proc_input_6_6) : sizeof(uint32_t);
	struct nlmsghdr *nl = (struct nlmsghdr *)request;
	nl->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + payload);
	nl->nlmsg_type = NLMSG_DONE;
	struct cn_msg *cn = NLMSG_DATA(nl);
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = payload;
	struct proc_input_6_6 input = {.mcast_op = PROC_CN_MCAST_LISTEN, .event_type = PROC_EVENT_EXEC};
	memcpy(cn->data, &input, payload);
	if (send(sock, request, nl->nlmsg_len, 0) < 0)
		return 2;
	waiting();
	uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u, wakeups = 0, events = 0;
	char buf[65536] __attribute__((aligned(8)));
	for (;;) {
		uint64_t now = clock_ns(CLOCK_MONOTONIC);
		if (now >= deadline) {
			report(0, wakeups, events);
			return 1;
		}
		struct pollfd p = {.fd = sock, .events = POLLIN};
		if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue;
		++wakeups;
		ssize_t n = recv(sock, buf, sizeof(buf), 0);
		if (n < 0)
			continue; // ENOBUFS: events lost while the host was busier than we read
		for (struct nlmsghdr *nl = (struct nlmsghdr *)buf; NLMSG_OK(nl, (size_t)n); nl = NLMSG_NEXT(nl, n)) {
			struct cn_msg *cn = NLMSG_DATA(nl);
			struct proc_event *ev = (struct proc_event *)cn->data;
			++events;
			if (ev->what == PROC_EVENT_EXEC && (int)ev->event_data.exec.process_tgid == pid) {
				report(1, wakeups, events);
				return 0;
			}
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: exec-wait poll|backoff|netlink|netlink-exec PID TIMEOUT_MS [PERIOD_MS]\n");
		return 2;
	}
	int pid = atoi(argv[2]);
	long timeout_ms = atol(argv[3]), period_ms = argc > 4 ? atol(argv[4]) : 10;
	int status = 2;
	if (strcmp(argv[1], "poll") == 0)
		status = wait_polling(pid, timeout_ms, period_ms, 0);
	else if (strcmp(argv[1], "backoff") == 0)
		status = wait_polling(pid, timeout_ms, period_ms, 1);
	else if (strcmp(argv[1], "netlink") == 0)
		status = wait_netlink(pid, timeout_ms, 0);
	else if (strcmp(argv[1], "netlink-exec") == 0)
		status = wait_netlink(pid, timeout_ms, 1);
	if (status == 2)
		fprintf(stderr, "exec-wait: %s: %s\n", argv[1], strerror(errno));
	return status;
}
