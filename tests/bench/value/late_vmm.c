// A VMM stand-in whose vCPU threads take their names late: vCPU 0 names itself "CPU 0/KVM" at once, every
// other one sleeps NAME_DELAY_MS after its creation before it names itself "CPU <n>/KVM" (then they pause). What a thread that has not run yet
// looks like to the hooks: on a loaded node a new thread may wait hundreds of ms for its first run, and
// QEMU's threads name themselves in that first run (qemu_thread_start). repro_late_names.py drives it.
//
//   vmmcg-value-late-vmm VCPUS NAME_DELAY_MS
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_ms;

static void *vcpu(void *arg)
{
	long delay = (long)arg == 0 ? 0 : delay_ms;
	struct timespec pause_for = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000L};
	nanosleep(&pause_for, NULL);
	char name[16];
	snprintf(name, sizeof(name), "CPU %d/KVM", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: vmmcg-value-late-vmm VCPUS NAME_DELAY_MS\n");
		return 2;
	}
	int vcpus = atoi(argv[1]);
	delay_ms = atol(argv[2]);
	for (long i = 0; i < vcpus; ++i) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, vcpu, (void *)i) != 0)
			return 1;
	}
	for (;;)
		pause();
}
