#include "cgroupfs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <utility>

#include "errors.h"
#include "io.h"
#include "paths.h"
#include "text.h"

namespace vmmcg {

namespace {

constexpr std::size_t max_cgroup_file_size = 4 << 20; // a tasks file of ~500k ids

bool is_cgroup_magic(long magic)
{
	return magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC;
}

std::error_code check_cgroup_fs(int fd)
{
	struct statfs fs {};
	if (::fstatfs(fd, &fs) != 0)
		return errno_code();
	if (!is_cgroup_magic(static_cast<long>(fs.f_type)))
		return errno_code(EXDEV);
	return {};
}

// "/a/b" + "file" -> "a/b/file"; "/" + "" -> ".".
std::string relative_path(std::string_view cgroup, std::string_view file)
{
	std::string out(cgroup.substr(cgroup.starts_with('/') ? 1 : 0));
	if (!file.empty()) {
		if (!out.empty())
			out += '/';
		out += file;
	}
	return out.empty() ? "." : out;
}

bool valid_name(std::string_view file)
{
	return file.empty() || (file.find('/') == std::string_view::npos && file != "." && file != "..");
}

bool openat2_missing = false;

// Component by component, for kernels without openat2: O_NOFOLLOW on every step, then the fs check.
UniqueFd resolve_by_components(int root, const std::string &relative, int flags, std::error_code &ec)
{
	UniqueFd dir(::fcntl(root, F_DUPFD_CLOEXEC, 0));
	if (!dir.valid()) {
		ec = errno_code();
		return {};
	}
	std::string_view rest = relative;
	if (rest == ".")
		rest = {};
	while (true) {
		std::size_t slash = rest.find('/');
		std::string part(rest.substr(0, slash));
		bool last = slash == std::string_view::npos;
		if (part.empty() && last)
			break;
		int step_flags = last ? (flags | O_NOFOLLOW | O_CLOEXEC)
				      : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		UniqueFd next(::openat(dir.get(), part.c_str(), step_flags));
		if (!next.valid()) {
			ec = errno_code();
			return {};
		}
		if ((ec = check_cgroup_fs(next.get())))
			return {};
		dir = std::move(next);
		if (last)
			return dir;
		rest.remove_prefix(slash + 1);
	}
	// The root itself: reopen with the requested flags.
	UniqueFd self(::openat(dir.get(), ".", flags | O_CLOEXEC));
	if (!self.valid())
		ec = errno_code();
	return self;
}

} // namespace

CgroupMount CgroupMount::open(const std::string &mount_path)
{
	if (!is_clean_absolute(mount_path))
		throw HostError("cgroup mount " + mount_path + ": not a clean absolute path");
	UniqueFd fd(::open(mount_path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd.valid())
		throw_errno("opening cgroup mount " + mount_path);
	struct statfs fs {};
	if (::fstatfs(fd.get(), &fs) != 0)
		throw_errno("statfs " + mount_path);
	long magic = static_cast<long>(fs.f_type);
	if (!is_cgroup_magic(magic))
		throw HostError(mount_path + " is not a cgroup file system");
	return CgroupMount(std::move(fd), mount_path);
}

UniqueFd CgroupMount::resolve(std::string_view relative, int flags, std::error_code &ec) const
{
	ec.clear();
	std::string rel(relative);
	if (!openat2_missing) {
		struct open_how how {};
		// openat2 rejects flags that do not apply: O_PATH takes only O_DIRECTORY, O_NOFOLLOW,
		// O_CLOEXEC.
		int extra = (flags & O_PATH) ? O_CLOEXEC : (O_CLOEXEC | O_NOCTTY);
		how.flags = static_cast<__u64>(flags | extra);
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
		long fd = ::syscall(SYS_openat2, root_.get(), rel.c_str(), &how, sizeof(how));
		if (fd >= 0)
			return UniqueFd(static_cast<int>(fd));
		if (errno != ENOSYS) {
			ec = errno_code();
			return {};
		}
		openat2_missing = true;
	}
	return resolve_by_components(root_.get(), rel, (flags & O_PATH) ? flags : (flags | O_NOCTTY), ec);
}

UniqueFd CgroupMount::open_file(std::string_view cgroup, std::string_view file, int flags,
				std::error_code &ec) const
{
	if (!is_clean_absolute(cgroup) || !valid_name(file)) {
		ec = errno_code(EINVAL);
		return {};
	}
	return resolve(relative_path(cgroup, file), flags, ec);
}

std::string CgroupMount::read_file(std::string_view cgroup, std::string_view file, std::error_code &ec) const
{
	std::string out;
	UniqueFd fd = open_file(cgroup, file, O_RDONLY, ec);
	if (fd.valid())
		ec = read_bounded(fd.get(), max_cgroup_file_size, out);
	return out;
}

std::string CgroupMount::read_value(std::string_view cgroup, std::string_view file, std::error_code &ec) const
{
	return trimmed(read_file(cgroup, file, ec));
}

std::error_code CgroupMount::write_file(std::string_view cgroup, std::string_view file,
					std::string_view value) const
{
	std::error_code ec;
	UniqueFd fd = open_file(cgroup, file, O_WRONLY, ec);
	if (!fd.valid())
		return ec;
	// cgroup files take one value per write(2): never split it.
	ssize_t n = ::write(fd.get(), value.data(), value.size());
	if (n < 0)
		return errno_code();
	if (static_cast<std::size_t>(n) != value.size())
		return errno_code(EIO);
	return {};
}

std::vector<pid_t> CgroupMount::read_ids(std::string_view cgroup, std::string_view file,
					 std::error_code &ec) const
{
	std::string text = read_file(cgroup, file, ec);
	return ec ? std::vector<pid_t>{} : parse_ids(text);
}

UniqueFd CgroupMount::open_parent(std::string_view cgroup, std::string &name, std::error_code &ec) const
{
	if (!is_clean_absolute(cgroup) || cgroup == "/") {
		ec = errno_code(EINVAL);
		return {};
	}
	name = cgroup.substr(cgroup.rfind('/') + 1);
	std::string parent = parent_path(cgroup);
	if (parent == "/") {
		ec.clear();
		return {}; // the mount's root: the caller uses root_ itself, already checked
	}
	return resolve(relative_path(parent, {}), O_PATH | O_DIRECTORY, ec);
}

std::error_code CgroupMount::at_parent(std::string_view cgroup, int (*call)(int dir, const char *name)) const
{
	std::error_code ec;
	std::string name;
	UniqueFd parent = open_parent(cgroup, name, ec);
	if (!parent.valid() && ec)
		return ec;
	if (call(parent.valid() ? parent.get() : root_.get(), name.c_str()) != 0)
		return errno_code();
	return {};
}

std::error_code CgroupMount::make_dir(std::string_view cgroup) const
{
	return at_parent(cgroup, [](int dir, const char *name) { return ::mkdirat(dir, name, 0755); });
}

std::error_code CgroupMount::remove_dir(std::string_view cgroup) const
{
	return at_parent(cgroup,
			 [](int dir, const char *name) { return ::unlinkat(dir, name, AT_REMOVEDIR); });
}

bool CgroupMount::exists(std::string_view cgroup) const
{
	std::error_code ec;
	return open_file(cgroup, {}, O_PATH | O_DIRECTORY, ec).valid();
}

std::string CgroupMount::describe(std::string_view cgroup, std::string_view file) const
{
	std::string out = path_;
	if (cgroup != "/")
		out += cgroup;
	if (!file.empty())
		out += "/" + std::string(file);
	return out;
}

std::error_code write_id(int fd, pid_t id)
{
	char buf[16];
	auto [end, err] = std::to_chars(buf, buf + sizeof(buf), id);
	(void)err;
	ssize_t n = ::write(fd, buf, static_cast<std::size_t>(end - buf));
	if (n < 0)
		return errno_code();
	return {};
}

std::vector<pid_t> parse_ids(std::string_view text)
{
	std::vector<pid_t> ids;
	for (std::string_view line : lines(text))
		if (auto id = to_number<pid_t>(line); id && *id > 0)
			ids.push_back(*id);
	return ids;
}

} // namespace vmmcg
