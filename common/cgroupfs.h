// The one place that touches cgroup file systems. Every access starts from a directory fd on a cgroup mount
// whose file system magic was checked, and resolves paths with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
// | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): no "..", no symlink, no other file system, so nothing a hook
// does can land outside the mount. Where openat2 is missing (Linux < 5.6) each component is opened with
// O_NOFOLLOW and the file system is checked again.
//
// Why not libcgroup for these writes: libcgroup 2.0.2 opens files by path (fopen, following symlinks), has
// no API for cgroup.type or cgroup.threads, moves one thread per call with a fresh open each time, and
// reports "ECGOTHER" where a caller needs ESRCH or EBUSY. The integration tests use it as the reference for
// mount discovery (host.h says why the hooks do not).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "unique_fd.h"

namespace vmmcg {

class CgroupMount
{
public:
	// Opens the mount root; throws std::system_error, or HostError if it is not a cgroup file system.
	static CgroupMount open(const std::string &mount_path);

	const std::string &path() const { return path_; }

	// `cgroup` is a clean absolute cgroup path ("/" is the mount root); `file` one name in it.
	UniqueFd open_file(std::string_view cgroup, std::string_view file, int flags,
			   std::error_code &ec) const;
	std::string read_file(std::string_view cgroup, std::string_view file, std::error_code &ec) const;
	// read_file without the trailing newline: the value of a one-line interface file.
	std::string read_value(std::string_view cgroup, std::string_view file, std::error_code &ec) const;
	std::error_code write_file(std::string_view cgroup, std::string_view file,
				   std::string_view value) const;
	// The ids in a tasks, cgroup.threads or cgroup.procs file.
	std::vector<pid_t> read_ids(std::string_view cgroup, std::string_view file,
				    std::error_code &ec) const;

	// mkdir: EEXIST comes back as such. rmdir: ENOENT and EBUSY come back as such.
	std::error_code make_dir(std::string_view cgroup) const;
	std::error_code remove_dir(std::string_view cgroup) const;
	bool exists(std::string_view cgroup) const;

	// The full path of a cgroup file, for messages.
	std::string describe(std::string_view cgroup, std::string_view file = {}) const;

private:
	CgroupMount(UniqueFd root, std::string path) : root_(std::move(root)), path_(std::move(path)) {}
	UniqueFd resolve(std::string_view relative, int flags, std::error_code &ec) const;
	// The parent directory of a cgroup (not "/"), and the cgroup's own name in it. An invalid fd with no
	// error for a cgroup right below the root: use root_, which needs no second open.
	UniqueFd open_parent(std::string_view cgroup, std::string &name, std::error_code &ec) const;
	// Calls mkdirat or unlinkat on the cgroup's parent directory fd and name.
	std::error_code at_parent(std::string_view cgroup, int (*call)(int dir, const char *name)) const;

	UniqueFd root_;
	std::string path_;
};

// Writes one id to an open tasks/cgroup.threads/cgroup.procs fd: the kernel takes one id per write(2).
std::error_code write_id(int fd, pid_t id);

// Parses the content of an id file ("12\n34\n"). Malformed lines are skipped.
std::vector<pid_t> parse_ids(std::string_view text);

} // namespace vmmcg
