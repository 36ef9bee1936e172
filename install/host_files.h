// The files of a host root (`/`, or a host's root file system mounted elsewhere, as a DaemonSet sees it):
// every path is resolved inside the root (openat2 RESOLVE_IN_ROOT), so an absolute symbolic link of the
// host (/etc -> /usr/etc) points into the host, not into the installer's own file system.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace vmmcg::install {

// Larger than any engine configuration; a bound on what is read into memory.
inline constexpr std::size_t max_config_file_size = 4 << 20;

class HostRoot
{
public:
	// root: an existing directory. Throws std::system_error.
	explicit HostRoot(const std::string &root);

	const std::string &root() const { return root_; }
	// Where a host path is seen from here (root "/" + "/etc/x" -> "/etc/x"; "/mnt/host" ->
	// "/mnt/host/etc/x").
	std::string shown(const std::string &host_path) const;

	// The text of a host file; nullopt when it does not exist. Throws InputError for a symbolic link as
	// the last component, a file that is not regular or is over max_config_file_size; std::system_error
	// for other failures.
	std::optional<std::string> read(const std::string &host_path) const;
	bool exists(const std::string &host_path) const;
	// The mode bits of a file (not following a symbolic link); nullopt when it does not exist.
	std::optional<mode_t> mode(const std::string &host_path) const;
	// Executable regular file (through symbolic links inside the root).
	bool executable(const std::string &host_path) const;

	// Replaces (or creates) the file atomically: a temp file beside it with the original's mode and owner
	// (new files: `mode`, root-owned), fsync, rename, fsync of the directory. Missing parent directories
	// are made (0755). Refuses (InputError) to replace a symbolic link.
	void write(const std::string &host_path, const std::string &text, mode_t mode = 0644) const;
	// Removes the file; false when it did not exist.
	bool remove(const std::string &host_path) const;
	// Renames from over to, in one directory or across (same file system).
	void rename(const std::string &from, const std::string &to) const;
	// Removes the directory when it is empty; false otherwise.
	bool remove_dir_if_empty(const std::string &host_path) const;
	// The names in a directory ending in suffix, sorted; empty when it does not exist.
	std::vector<std::string> list(const std::string &host_dir, const std::string &suffix) const;

private:
	// The directory of host_path, opened inside the root; invalid (and errno ENOENT) when missing unless
	// create is set.
	UniqueFd open_parent(const std::string &host_path, bool create) const;
	UniqueFd open_in_root(const std::string &host_path, int flags, bool follow_last) const;

	std::string root_;
	UniqueFd root_fd_;
};

} // namespace vmmcg::install
