/*
 * The floor of the benchmark: the least a process must do to perform each hook stage of the split layout
 * on a cgroup v1 host, and nothing else. No configuration, no record, no logging, no checks beyond what
 * the kernel makes unavoidable; a fixed vCPU name pattern ("CPU <n>/KVM"). Timed as a whole process, the
 * same way as the hooks, so its figure includes exec and the dynamic-loader-free start of a static binary.
 *
 *   vmmcg-bench-floor create|place|teardown OVERHEAD_ROOT MOUNT...   (the OCI state on standard input)
 *
 * create:   mkdir OVERHEAD_ROOT and OVERHEAD_ROOT/<id> in each MOUNT, cpuset.cpus/mems copied from the
 *           parent where the mount has them;
 * place:    the VMM (state pid) into OVERHEAD_ROOT/<id> through cgroup.procs, then each thread named like
 *           a vCPU back to the sandbox (its line in /proc/<pid>/cgroup) through tasks;
 * teardown: rmdir OVERHEAD_ROOT/<id>, then OVERHEAD_ROOT if it is empty.
 *
 * Exits 0, or 1 with a message: it is a yardstick, not a product.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MOUNTS 8

static void die(const char *what)
{
	fprintf(stderr, "vmmcg-bench-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static ssize_t read_path(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void write_path(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		die(path);
	close(fd);
}

/* The string or number after "key": in the state; enough for the state a runtime writes. */
static void state_field(const char *state, const char *key, char *out, size_t size)
{
	char quoted[32];
	snprintf(quoted, sizeof quoted, "\"%s\"", key);
	const char *p = strstr(state, quoted);
	if (!p) {
		errno = EINVAL;
		die(key);
	}
	p = strchr(p + strlen(quoted), ':') + 1;
	p += strspn(p, " \t\n\"");
	size_t len = strcspn(p, "\",} \n");
	if (len >= size)
		len = size - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

static void seed_cpuset(const char *mount, const char *parent, const char *child)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
	char path[4096], value[256];
	for (int i = 0; i < 2; ++i) {
		snprintf(path, sizeof path, "%s%s/%s", mount, parent, files[i]);
		ssize_t n = read_path(path, value, sizeof value);
		if (n < 0)
			return; /* not a cpuset mount */
		snprintf(path, sizeof path, "%s%s/%s", mount, child, files[i]);
		write_path(path, value, (size_t)n);
	}
}

static void create(const char *root, const char *id, char **mounts, int count)
{
	char path[4096], child[4096];
	snprintf(child, sizeof child, "%s/%s", root, id);
	for (int i = 0; i < count; ++i) {
		snprintf(path, sizeof path, "%s%s", mounts[i], root);
		if (mkdir(path, 0755) == 0)
			seed_cpuset(mounts[i], "", root);
		else if (errno != EEXIST)
			die(path);
		snprintf(path, sizeof path, "%s%s", mounts[i], child);
		if (mkdir(path, 0755) != 0)
			die(path);
		seed_cpuset(mounts[i], root, child);
	}
}

/* The path of the hierarchy mounted at `mount` in /proc/<pid>/cgroup text, matched by controller name. */
static int sandbox_of(const char *cgroups, const char *mount, char *out, size_t size)
{
	const char *name = strrchr(mount, '/') + 1;
	size_t len = strlen(name);
	for (const char *line = cgroups; *line; line = strchr(line, '\n') + 1) {
		const char *controllers = strchr(line, ':') + 1;
		const char *path = strchr(controllers, ':') + 1;
		const char *end = strchr(path, '\n');
		if ((size_t)(path - 1 - controllers) == len && memcmp(controllers, name, len) == 0) {
			snprintf(out, size, "%.*s", (int)(end - path), path);
			return 0;
		}
		if (!end)
			break;
	}
	return -1;
}

static void place(const char *root, const char *id, const char *pid, char **mounts, int count)
{
	char path[4096], cgroups[8192], sandbox[MAX_MOUNTS][1024];
	int tasks[MAX_MOUNTS];
	snprintf(path, sizeof path, "/proc/%s/cgroup", pid);
	if (read_path(path, cgroups, sizeof cgroups) < 0)
		die(path);
	for (int i = 0; i < count; ++i) {
		if (sandbox_of(cgroups, mounts[i], sandbox[i], sizeof sandbox[i]) != 0) {
			errno = ENOENT;
			die(mounts[i]);
		}
		snprintf(path, sizeof path, "%s%s/tasks", mounts[i], sandbox[i]);
		if ((tasks[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			die(path);
		snprintf(path, sizeof path, "%s%s/%s/cgroup.procs", mounts[i], root, id);
		write_path(path, pid, strlen(pid));
	}
	snprintf(path, sizeof path, "/proc/%s/task", pid);
	DIR *dir = opendir(path);
	if (!dir)
		die(path);
	for (struct dirent *entry; (entry = readdir(dir));) {
		char comm[64];
		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%s/task/%s/comm", pid, entry->d_name);
		ssize_t n = read_path(path, comm, sizeof comm);
		if (n <= 0 || strncmp(comm, "CPU ", 4) != 0 || !strstr(comm, "/KVM"))
			continue;
		size_t len = strlen(entry->d_name);
		for (int i = 0; i < count; ++i)
			if (write(tasks[i], entry->d_name, len) != (ssize_t)len && errno != ESRCH)
				die("tasks");
	}
	closedir(dir);
}

static void teardown(const char *root, const char *id, char **mounts, int count)
{
	char path[4096];
	for (int i = 0; i < count; ++i) {
		snprintf(path, sizeof path, "%s%s/%s", mounts[i], root, id);
		if (rmdir(path) != 0 && errno != ENOENT)
			die(path);
		snprintf(path, sizeof path, "%s%s", mounts[i], root);
		rmdir(path); /* shared: another container may still use it */
	}
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc - 3 > MAX_MOUNTS) {
		fprintf(stderr, "usage: vmmcg-bench-floor create|place|teardown OVERHEAD_ROOT MOUNT...\n");
		return 2;
	}
	static char state[65536];
	size_t used = 0;
	for (ssize_t n; (n = read(0, state + used, sizeof state - 1 - used)) > 0;)
		used += (size_t)n;
	state[used] = '\0';
	char id[256];
	state_field(state, "id", id, sizeof id);
	const char *stage = argv[1], *root = argv[2];
	char **mounts = argv + 3;
	int count = argc - 3;
	if (strcmp(stage, "create") == 0) {
		create(root, id, mounts, count);
	} else if (strcmp(stage, "place") == 0) {
		char pid[32];
		state_field(state, "pid", pid, sizeof pid);
		place(root, id, pid, mounts, count);
	} else if (strcmp(stage, "teardown") == 0) {
		teardown(root, id, mounts, count);
	} else {
		fprintf(stderr, "vmmcg-bench-floor: unknown stage '%s'\n", stage);
		return 2;
	}
	return 0;
}
