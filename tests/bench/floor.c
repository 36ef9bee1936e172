/*
 * The floor of the benchmark: the least a process must do to perform each hook stage of the split layout
 * on a cgroup v1 host, and nothing else. No configuration, no record, no logging, no checks beyond what
 * the kernel makes unavoidable; a fixed vCPU name pattern ("CPU <n>/KVM"), no proof that they are vCPUs.
 * Timed as a whole process, the same way as the hooks, so its figure includes exec and the
 * dynamic-loader-free start of a static binary.
 *
 *   vmmcg-bench-floor create|place|teardown MOUNT...   (the OCI state on standard input)
 *
 * O is where the hooks put it by default: beside the sandbox S, <parent of S>/vmm-overhead-<id>-<hash>,
 * the hash the FNV-1a 64 of the state's bundle path (the hooks' instance name).
 * create:   S from /proc/<pid>/cgroup; mkdir O in each MOUNT, cpuset.cpus/mems copied from S where the
 *           mount has them;
 * place:    S from /proc/<pid>/cgroup; the VMM (state pid) into O through cgroup.procs, then each thread
 *           named like a vCPU back to S through tasks;
 * teardown: (no pid, the VMM gone) S from the bundle's config.json, linux.cgroupsPath (absolute, the same
 *           in each hierarchy: where a hook keeps no record, the one place that names S); rmdir O.
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
		snprintf(path, sizeof path, "%.1024s%.1100s/%s", mount, parent, files[i]);
		ssize_t n = read_path(path, value, sizeof value);
		if (n < 0)
			return; /* not a cpuset mount */
		snprintf(path, sizeof path, "%.1024s%.1100s/%s", mount, child, files[i]);
		write_path(path, value, (size_t)n);
	}
}

/* O of sandbox S: <parent of S>/vmm-overhead-<name>. */
static void overhead_of(const char *sandbox, const char *name, char *out, size_t size)
{
	const char *slash = strrchr(sandbox, '/');
	int parent = slash ? (int)(slash - sandbox) : 0;
	snprintf(out, size, "%.*s/vmm-overhead-%s", parent, sandbox, name);
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

/* S in each mount, from /proc/<pid>/cgroup. */
static void sandboxes(const char *pid, char **mounts, int count, char sandbox[][1024])
{
	char path[4096], cgroups[8192];
	snprintf(path, sizeof path, "/proc/%s/cgroup", pid);
	if (read_path(path, cgroups, sizeof cgroups) < 0)
		die(path);
	for (int i = 0; i < count; ++i) {
		if (sandbox_of(cgroups, mounts[i], sandbox[i], 1024) != 0) {
			errno = ENOENT;
			die(mounts[i]);
		}
	}
}

static void create(const char *name, const char *pid, char **mounts, int count)
{
	char path[4096], sandbox[MAX_MOUNTS][1024], overhead[1100];
	sandboxes(pid, mounts, count, sandbox);
	for (int i = 0; i < count; ++i) {
		overhead_of(sandbox[i], name, overhead, sizeof overhead);
		snprintf(path, sizeof path, "%s%s", mounts[i], overhead);
		if (mkdir(path, 0755) != 0)
			die(path);
		seed_cpuset(mounts[i], sandbox[i], overhead);
	}
}

static void place(const char *name, const char *pid, char **mounts, int count)
{
	char path[4096], sandbox[MAX_MOUNTS][1024], overhead[1100];
	int tasks[MAX_MOUNTS];
	sandboxes(pid, mounts, count, sandbox);
	for (int i = 0; i < count; ++i) {
		snprintf(path, sizeof path, "%s%s/tasks", mounts[i], sandbox[i]);
		if ((tasks[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			die(path);
		overhead_of(sandbox[i], name, overhead, sizeof overhead);
		snprintf(path, sizeof path, "%s%s/cgroup.procs", mounts[i], overhead);
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

static void teardown(const char *name, const char *bundle, char **mounts, int count)
{
	static char config[65536];
	char path[4096], sandbox[1024], overhead[1100];
	snprintf(path, sizeof path, "%s/config.json", bundle);
	if (read_path(path, config, sizeof config) < 0)
		die(path);
	state_field(config, "cgroupsPath", sandbox, sizeof sandbox);
	overhead_of(sandbox, name, overhead, sizeof overhead);
	for (int i = 0; i < count; ++i) {
		snprintf(path, sizeof path, "%s%s", mounts[i], overhead);
		if (rmdir(path) != 0 && errno != ENOENT)
			die(path);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc - 2 > MAX_MOUNTS) {
		fprintf(stderr, "usage: vmmcg-bench-floor create|place|teardown MOUNT...\n");
		return 2;
	}
	static char state[65536];
	size_t used = 0;
	for (ssize_t n; (n = read(0, state + used, sizeof state - 1 - used)) > 0;)
		used += (size_t)n;
	state[used] = '\0';
	char id[256], bundle[2048], name[300];
	state_field(state, "id", id, sizeof id);
	state_field(state, "bundle", bundle, sizeof bundle);
	/* The hooks' instance name: the id and the FNV-1a 64 hash of the bundle path. */
	unsigned long long hash = 0xcbf29ce484222325ULL;
	for (const char *c = bundle; *c; ++c)
		hash = (hash ^ (unsigned char)*c) * 0x100000001b3ULL;
	snprintf(name, sizeof name, "%s-%016llx", id, hash);
	const char *stage = argv[1];
	char **mounts = argv + 2;
	int count = argc - 2;
	if (strcmp(stage, "create") == 0 || strcmp(stage, "place") == 0) {
		char pid[32];
		state_field(state, "pid", pid, sizeof pid);
		if (stage[0] == 'c')
			create(name, pid, mounts, count);
		else
			place(name, pid, mounts, count);
	} else if (strcmp(stage, "teardown") == 0) {
		teardown(name, bundle, mounts, count);
	} else {
		fprintf(stderr, "vmmcg-bench-floor: unknown stage '%s'\n", stage);
		return 2;
	}
	return 0;
}
