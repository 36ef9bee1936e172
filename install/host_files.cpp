#include "host_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "errors.h"
#include "io.h"
#include "paths.h"

namespace vmmcg::install {

namespace {

std::string relative(const std::string &host_path)
{
	if (!is_clean_absolute(host_path))
		throw InputError("'" + host_path + "': not a clean absolute path");
	return host_path == "/" ? "." : host_path.substr(1);
}

std::string base_name(const std::string &host_path)
{
	return host_path.substr(host_path.rfind('/') + 1);
}

} // namespace

HostRoot::HostRoot(const std::string &root) : root_(root)
{
	root_fd_ = UniqueFd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!root_fd_.valid())
		throw_errno("--root " + root);
}

std::string HostRoot::shown(const std::string &host_path) const
{
	if (root_ == "/")
		return host_path;
	std::string base = root_;
	while (base.size() > 1 && base.back() == '/')
		base.pop_back();
	return base + host_path;
}

UniqueFd HostRoot::open_in_root(const std::string &host_path, int flags, bool follow_last) const
{
	std::string rel = relative(host_path);
	if (!follow_last)
		flags |= O_NOFOLLOW;
	struct open_how how {};
	how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	long fd = ::syscall(SYS_openat2, root_fd_.get(), rel.c_str(), &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) // before Linux 5.6: resolved as the installer sees the root
		fd = ::openat(root_fd_.get(), rel.c_str(), flags | O_CLOEXEC);
	return UniqueFd(static_cast<int>(fd));
}

std::optional<std::string> HostRoot::read(const std::string &host_path) const
{
	UniqueFd fd = open_in_root(host_path, O_RDONLY | O_NONBLOCK, false);
	if (!fd.valid()) {
		if (errno == ENOENT)
			return std::nullopt;
		if (errno == ELOOP)
			throw InputError(shown(host_path) +
					 ": a symbolic link (left alone: edit its target)");
		throw_errno(shown(host_path));
	}
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0)
		throw_errno(shown(host_path) + ": fstat");
	if (!S_ISREG(st.st_mode))
		throw InputError(shown(host_path) + ": not a regular file");
	return read_fd_limited(fd.get(), max_config_file_size, shown(host_path));
}

bool HostRoot::exists(const std::string &host_path) const
{
	UniqueFd fd = open_in_root(host_path, O_PATH, false);
	return fd.valid();
}

std::optional<mode_t> HostRoot::mode(const std::string &host_path) const
{
	UniqueFd fd = open_in_root(host_path, O_PATH, false);
	struct stat st {};
	if (!fd.valid() || ::fstat(fd.get(), &st) != 0)
		return std::nullopt;
	return st.st_mode & 07777;
}

bool HostRoot::executable(const std::string &host_path) const
{
	UniqueFd fd = open_in_root(host_path, O_PATH, true);
	struct stat st {};
	return fd.valid() && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
}

UniqueFd HostRoot::open_parent(const std::string &host_path, bool create) const
{
	std::string parent = parent_path(host_path);
	UniqueFd dir = open_in_root(parent, O_PATH | O_DIRECTORY, true);
	if (dir.valid() || errno != ENOENT || !create)
		return dir;
	if (parent != "/") {
		UniqueFd above = open_parent(parent, true);
		if (!above.valid())
			throw_errno(shown(parent_path(parent)));
		if (::mkdirat(above.get(), base_name(parent).c_str(), 0755) != 0 && errno != EEXIST)
			throw_errno(shown(parent) + ": mkdir");
	}
	return open_in_root(parent, O_PATH | O_DIRECTORY, true);
}

void HostRoot::write(const std::string &host_path, const std::string &text, mode_t mode) const
{
	UniqueFd dir = open_parent(host_path, true);
	if (!dir.valid())
		throw_errno(shown(parent_path(host_path)));
	// O_PATH fds cannot be written through: a real directory fd for the *at calls and fsync
	UniqueFd dir_rw(::openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dir_rw.valid())
		throw_errno(shown(parent_path(host_path)));
	const std::string name = base_name(host_path);
	uid_t uid = 0;
	gid_t gid = 0;
	struct stat st {};
	if (::fstatat(dir_rw.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			throw InputError(shown(host_path) +
					 ": a symbolic link (left alone: edit its target)");
		if (!S_ISREG(st.st_mode))
			throw InputError(shown(host_path) + ": not a regular file");
		mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
	} else if (errno != ENOENT) {
		throw_errno(shown(host_path) + ": stat");
	}
	const std::string temp = "." + name + ".vmmcg-tmp." + std::to_string(::getpid());
	UniqueFd out(::openat(dir_rw.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!out.valid())
		throw_errno(shown(host_path) + ": create " + temp);
	try {
		write_all(out.get(), text, shown(host_path) + ": write");
		if (::fchown(out.get(), uid, gid) != 0 && errno != EPERM)
			throw_errno(shown(host_path) + ": fchown");
		if (::fchmod(out.get(), mode) != 0)
			throw_errno(shown(host_path) + ": fchmod");
		if (::fsync(out.get()) != 0)
			throw_errno(shown(host_path) + ": fsync");
		if (::renameat(dir_rw.get(), temp.c_str(), dir_rw.get(), name.c_str()) != 0)
			throw_errno(shown(host_path) + ": rename");
	} catch (...) {
		::unlinkat(dir_rw.get(), temp.c_str(), 0);
		throw;
	}
	::fsync(dir_rw.get()); // best effort: the rename is done
}

bool HostRoot::remove(const std::string &host_path) const
{
	UniqueFd dir = open_parent(host_path, false);
	if (!dir.valid()) {
		if (errno == ENOENT)
			return false;
		throw_errno(shown(parent_path(host_path)));
	}
	if (::unlinkat(dir.get(), base_name(host_path).c_str(), 0) != 0) {
		if (errno == ENOENT)
			return false;
		throw_errno(shown(host_path) + ": unlink");
	}
	return true;
}

void HostRoot::rename(const std::string &from, const std::string &to) const
{
	UniqueFd from_dir = open_parent(from, false);
	UniqueFd to_dir = open_parent(to, true);
	if (!from_dir.valid() || !to_dir.valid())
		throw_errno(shown(from) + " -> " + shown(to));
	if (::renameat(from_dir.get(), base_name(from).c_str(), to_dir.get(), base_name(to).c_str()) != 0)
		throw_errno(shown(from) + " -> " + shown(to) + ": rename");
}

bool HostRoot::remove_dir_if_empty(const std::string &host_path) const
{
	UniqueFd dir = open_parent(host_path, false);
	if (!dir.valid())
		return false;
	if (::unlinkat(dir.get(), base_name(host_path).c_str(), AT_REMOVEDIR) == 0)
		return true;
	if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR)
		return false;
	throw_errno(shown(host_path) + ": rmdir");
}

std::vector<std::string> HostRoot::list(const std::string &host_dir, const std::string &suffix) const
{
	std::vector<std::string> names;
	UniqueFd fd = open_in_root(host_dir, O_RDONLY | O_DIRECTORY, true);
	if (!fd.valid()) {
		if (errno == ENOENT || errno == ENOTDIR)
			return names;
		throw_errno(shown(host_dir));
	}
	DIR *dir = ::fdopendir(fd.release());
	if (!dir)
		throw_errno(shown(host_dir));
	while (dirent *entry = ::readdir(dir)) {
		std::string name = entry->d_name;
		if (name.size() > suffix.size() && name.ends_with(suffix) && !name.starts_with("."))
			names.push_back(name);
	}
	::closedir(dir);
	std::sort(names.begin(), names.end());
	return names;
}

} // namespace vmmcg::install
