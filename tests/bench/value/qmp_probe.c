// The v2 part's probe, run inside the cgroup v2 guest (static, no libraries): QMP round trips to the inner
// QEMU, and the CPU of its vCPU and other threads over the same window (v2/init.sh runs it).
//
//   qmp-probe SOCKET SECONDS INTERVAL_MS PID
//
// Connects to the QMP socket, negotiates capabilities, then sends query-status every INTERVAL_MS for
// SECONDS, timing each round trip with CLOCK_MONOTONIC. Prints on stdout (the serial console):
//   VALUE-QMP <us> <us> ...                      (at most 32 figures a line)
//   VALUE-CPU <vCPU ticks> <process ticks> <wall ns> <clock ticks per second>
// where the ticks are utime+stime deltas over the window: of the threads named "CPU <n>/TCG" or
// "CPU <n>/KVM", and of the whole process (its exited threads included).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 100000

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	printf("VALUE-QMP-FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static char buffer[65536];
static size_t filled;

// Reads until a line containing `want` (events are skipped); dies on an error reply.
static void await(int fd, const char *want)
{
	for (;;) {
		char *newline;
		while ((newline = memchr(buffer, '\n', filled)) != NULL) {
			*newline = '\0';
			int found = strstr(buffer, want) != NULL, failed = strstr(buffer, "\"error\"") != NULL;
			size_t used = (size_t)(newline - buffer) + 1;
			memmove(buffer, newline + 1, filled - used);
			filled -= used;
			if (failed) {
				errno = EPROTO;
				die("QMP error reply");
			}
			if (found)
				return;
		}
		if (filled == sizeof(buffer))
			filled = 0; // a line longer than the buffer: not one we wait for
		ssize_t n = read(fd, buffer + filled, sizeof(buffer) - filled);
		if (n <= 0)
			die("QMP read");
		filled += (size_t)n;
	}
}

static void send_all(int fd, const char *text)
{
	size_t len = strlen(text);
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n <= 0)
			die("QMP write");
		text += n;
		len -= (size_t)n;
	}
}

static unsigned long long stat_ticks(const char *path)
{
	char text[2048];
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char *rest = strrchr(text, ')');
	if (!rest)
		return 0;
	unsigned long long utime = 0, stime = 0;
	// After ") ": state is field 3; utime and stime are fields 14 and 15.
	char *field = strtok(rest + 1, " ");
	for (int index = 3; field; ++index, field = strtok(NULL, " ")) {
		if (index == 14)
			utime = strtoull(field, NULL, 10);
		else if (index == 15) {
			stime = strtoull(field, NULL, 10);
			break;
		}
	}
	return utime + stime;
}

static int is_vcpu(const char *name)
{
	unsigned index;
	char kind[8];
	return sscanf(name, "CPU %u/%7s", &index, kind) == 2 && (!strcmp(kind, "TCG") || !strcmp(kind, "KVM"));
}

static unsigned long long vcpu_ticks(int pid)
{
	char path[512];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	unsigned long long sum = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		char name[64] = "";
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, entry->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(name, sizeof(name), f))
			name[0] = '\0';
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (!is_vcpu(name))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid, entry->d_name);
		sum += stat_ticks(path);
	}
	closedir(dir);
	return sum;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: qmp-probe SOCKET SECONDS INTERVAL_MS PID\n");
		return 2;
	}
	double seconds = atof(argv[2]);
	long interval_ms = atol(argv[3]);
	int pid = atoi(argv[4]);
	char process_stat[64];
	snprintf(process_stat, sizeof(process_stat), "/proc/%d/stat", pid);

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[1]);
	int tries = 0;
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		if (++tries > 600)
			die("connect");
		usleep(100000);
	}
	await(fd, "\"QMP\"");
	send_all(fd, "{\"execute\":\"qmp_capabilities\"}\n");
	await(fd, "\"return\"");

	static unsigned samples[MAX_SAMPLES];
	int n = 0;
	unsigned long long vcpu0 = vcpu_ticks(pid), process0 = stat_ticks(process_stat);
	uint64_t start = now_ns(), next = start;
	while (now_ns() - start < (uint64_t)(seconds * 1e9) && n < MAX_SAMPLES) {
		uint64_t t0 = now_ns();
		send_all(fd, "{\"execute\":\"query-status\"}\n");
		await(fd, "\"return\"");
		samples[n++] = (unsigned)((now_ns() - t0) / 1000);
		next += (uint64_t)interval_ms * 1000000u;
		uint64_t t = now_ns();
		if (next > t) {
			struct timespec pause = {.tv_sec = (time_t)((next - t) / 1000000000u),
						 .tv_nsec = (long)((next - t) % 1000000000u)};
			nanosleep(&pause, NULL);
		} else {
			next = t;
		}
	}
	uint64_t wall = now_ns() - start;
	unsigned long long vcpu1 = vcpu_ticks(pid), process1 = stat_ticks(process_stat);
	for (int i = 0; i < n; i += 32) {
		printf("VALUE-QMP");
		for (int j = i; j < n && j < i + 32; ++j)
			printf(" %u", samples[j]);
		printf("\n");
	}
	printf("VALUE-CPU %llu %llu %llu %ld\n", vcpu1 - vcpu0, process1 - process0, (unsigned long long)wall,
	       sysconf(_SC_CLK_TCK));
	fflush(stdout);
	return 0;
}
