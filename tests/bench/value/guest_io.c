// The value benchmark's I/O probe, run inside the guest (static, no libraries): what the guest's owner
// feels of the VMM's device emulation. Every request goes to the virtio-blk disk (O_DIRECT: no guest page
// cache), so each one is served by QEMU's iothread or main loop on the host.
//
//   guest-io DEV LATENCY_S INTERVAL_MS THROUGHPUT_S
//   guest-io spin        (a spinner at SCHED_IDLE: saturates a vCPU, gives way to anything else)
//
// Latency: for LATENCY_S seconds, one 4 KiB request every INTERVAL_MS (reads and writes alternating, at
// random aligned offsets), each timed with CLOCK_MONOTONIC. Throughput: THROUGHPUT_S seconds of sequential
// 64 KiB reads, then as long of writes, back to back (queue depth 1). The probe runs SCHED_FIFO so that
// the guest's own spinners (SCHED_IDLE) do not stand between a completion and its timing: what is left is
// the host's doing. Prints, on stdout (the serial console):
//   VALUE-LAT r|w <us> <us> ...      (at most 32 figures a line)
//   VALUE-THRU <read MB/s> <write MB/s> <read requests> <write requests>
//   VALUE-IO-DONE
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define SMALL 4096
#define LARGE 65536
#define MAX_SAMPLES 100000

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	printf("VALUE-IO-FAIL %s\n", what);
	fflush(stdout);
	exit(1);
}

static void print_samples(const char *kind, const unsigned *us, int n)
{
	for (int i = 0; i < n; i += 32) {
		printf("VALUE-LAT %s", kind);
		for (int j = i; j < n && j < i + 32; ++j)
			printf(" %u", us[j]);
		printf("\n");
	}
}

static void spin(void)
{
	struct sched_param param = {.sched_priority = 0};
	if (sched_setscheduler(0, SCHED_IDLE, &param) != 0)
		die("sched_setscheduler SCHED_IDLE");
	for (volatile unsigned long i = 0;; ++i) {
	}
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "spin") == 0)
		spin();
	if (argc != 5)
		die("usage: guest-io DEV LATENCY_S INTERVAL_MS THROUGHPUT_S");
	double latency_s = atof(argv[2]), throughput_s = atof(argv[4]);
	long interval_ms = atol(argv[3]);

	struct sched_param param = {.sched_priority = 50};
	if (sched_setscheduler(0, SCHED_FIFO, &param) != 0)
		die("sched_setscheduler");
	mlockall(MCL_CURRENT | MCL_FUTURE);

	int fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0)
		die("open");
	uint64_t size = 0;
	if (ioctl(fd, BLKGETSIZE64, &size) != 0 || size < 2 * LARGE)
		die("size");
	void *buf;
	if (posix_memalign(&buf, 4096, LARGE) != 0)
		die("memory");
	memset(buf, 0x5a, LARGE);

	static unsigned reads[MAX_SAMPLES], writes[MAX_SAMPLES];
	int nr = 0, nw = 0;
	uint64_t seed = now_ns() | 1;
	uint64_t start = now_ns(), next = start;
	while (now_ns() - start < (uint64_t)(latency_s * 1e9) && nr < MAX_SAMPLES && nw < MAX_SAMPLES) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		off_t offset = (off_t)(seed % (size / SMALL)) * SMALL;
		int write_it = (nr + nw) & 1;
		uint64_t t0 = now_ns();
		ssize_t done = write_it ? pwrite(fd, buf, SMALL, offset) : pread(fd, buf, SMALL, offset);
		uint64_t t1 = now_ns();
		if (done != SMALL)
			die(write_it ? "pwrite" : "pread");
		if (write_it)
			writes[nw++] = (unsigned)((t1 - t0) / 1000);
		else
			reads[nr++] = (unsigned)((t1 - t0) / 1000);
		next += (uint64_t)interval_ms * 1000000u;
		uint64_t t = now_ns();
		if (next > t) {
			struct timespec pause = {.tv_sec = (time_t)((next - t) / 1000000000u),
						 .tv_nsec = (long)((next - t) % 1000000000u)};
			nanosleep(&pause, NULL);
		} else {
			next = t; // late (the vCPU was throttled): no burst to catch up
		}
	}

	double mb[2];
	long requests[2];
	for (int phase = 0; phase < 2; ++phase) {
		off_t offset = 0;
		long n = 0;
		uint64_t t0 = now_ns(), t;
		while ((t = now_ns()) - t0 < (uint64_t)(throughput_s * 1e9)) {
			ssize_t done = phase ? pwrite(fd, buf, LARGE, offset) : pread(fd, buf, LARGE, offset);
			if (done != LARGE)
				die(phase ? "pwrite" : "pread");
			offset += LARGE;
			if ((uint64_t)offset + LARGE > size)
				offset = 0;
			++n;
		}
		requests[phase] = n;
		mb[phase] = (double)n * LARGE / 1e6 / ((double)(t - t0) / 1e9);
	}
	print_samples("r", reads, nr);
	print_samples("w", writes, nw);
	printf("VALUE-THRU %.1f %.1f %ld %ld\n", mb[0], mb[1], requests[0], requests[1]);
	printf("VALUE-IO-DONE\n");
	fflush(stdout);
	return 0;
}
