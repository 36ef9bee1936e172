/*
 * The benchmark's stopwatch: runs PROGRAM with this process's standard input and error (its standard
 * output goes to /dev/null) and prints "<wall ns> <peak RSS KiB> <wait status> <CPU ns>" to standard
 * output, CPU being user plus system time.
 *
 *   vmmcg-bench-spawn PROGRAM [ARG...]
 *
 * Why not time from Python directly: a child's ru_maxrss counts the memory of the process it was forked
 * from up to its exec (the kernel keeps the old mm's high-water mark at exec), so children of a Python
 * driver all showed Python's 15 MiB. This launcher is static and small, so the figure is the program's.
 * It also keeps the interpreter's own spawn cost out of the wall time.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: vmmcg-bench-spawn PROGRAM [ARG...]\n");
		return 2;
	}
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pid_t pid;
	int err = posix_spawn(&pid, argv[1], &actions, NULL, argv + 1, environ);
	if (err != 0) {
		fprintf(stderr, "vmmcg-bench-spawn: %s: cannot run (error %d)\n", argv[1], err);
		return 1;
	}
	int status;
	struct rusage usage;
	if (wait4(pid, &status, 0, &usage) != pid) {
		perror("vmmcg-bench-spawn: wait4");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	long long ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
	long long cpu = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000000LL +
			(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000LL;
	printf("%lld %ld %d %lld\n", ns, usage.ru_maxrss, status, cpu);
	return 0;
}
