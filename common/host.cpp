#include "host.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>
#include <set>
#include <system_error>
#include <vector>

#include "errors.h"
#include "paths.h"
#include "procfs.h"
#include "text.h"

namespace vmmcg {

namespace {

std::optional<long> fs_magic(const std::string &path)
{
	struct statfs fs {};
	if (::statfs(path.c_str(), &fs) != 0)
		return std::nullopt;
	return static_cast<long>(fs.f_type);
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view field)
{
	std::string out;
	for (std::size_t i = 0; i < field.size(); ++i) {
		if (field[i] == '\\' && i + 3 < field.size()) {
			std::string_view octal = field.substr(i + 1, 3);
			if (octal.size() == 3 && std::all_of(octal.begin(), octal.end(),
							     [](char c) { return c >= '0' && c <= '7'; })) {
				out += static_cast<char>((octal[0] - '0') * 64 + (octal[1] - '0') * 8 +
							 (octal[2] - '0'));
				i += 3;
				continue;
			}
		}
		out += field[i];
	}
	return out;
}

const std::set<std::string, std::less<>> v1_controllers = {
	"cpu",   "cpuacct",    "cpuset",   "memory",  "devices", "freezer", "net_cls",
	"blkio", "perf_event", "net_prio", "hugetlb", "pids",    "rdma",    "misc"};

} // namespace

std::string_view to_string(HostMode mode)
{
	switch (mode) {
	case HostMode::v1:
		return "v1";
	case HostMode::hybrid:
		return "hybrid";
	case HostMode::v2:
		return "v2";
	}
	return "?";
}

std::optional<HostMode> parse_host_mode(std::string_view text)
{
	if (text == "v1")
		return HostMode::v1;
	if (text == "hybrid")
		return HostMode::hybrid;
	if (text == "v2")
		return HostMode::v2;
	return std::nullopt;
}

HostMode detect_host_mode(const std::string &root)
{
	auto magic = fs_magic(root);
	if (!magic)
		throw_errno("statfs " + root);
	if (*magic == CGROUP2_SUPER_MAGIC)
		return HostMode::v2;
	if (*magic == TMPFS_MAGIC && fs_magic(root + "/unified") == CGROUP2_SUPER_MAGIC)
		return HostMode::hybrid;
	return HostMode::v1;
}

Mounts discover_mounts(HostMode mode, const std::string &root)
{
	Mounts mounts;
	if (mode == HostMode::v2) {
		mounts.unified = root;
		return mounts;
	}
	if (mode == HostMode::hybrid)
		mounts.unified = root + "/unified";

	std::error_code ec;
	mounts.v1 = parse_v1_mounts(ProcFs().read_self("mountinfo", ec));
	if (ec)
		throw std::system_error(ec, "reading /proc/self/mountinfo");
	return mounts;
}

std::map<std::string, std::string> parse_v1_mounts(std::string_view mountinfo)
{
	std::map<std::string, std::string> mounts;
	for (std::string_view line : lines(mountinfo)) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		std::vector<std::string_view> fields = split(line, ' ');
		auto dash = std::find(fields.begin(), fields.end(), "-");
		if (fields.size() < 6 || dash == fields.end() || fields.end() - dash < 4 ||
		    dash[1] != "cgroup")
			continue;
		// A bind mount of a sub-tree: /proc/<pid>/cgroup paths are not relative to it.
		if (fields[3] != "/")
			continue;
		std::string mount_point = unescape(fields[4]);
		for (std::string_view option : split(dash[3], ','))
			if (v1_controllers.contains(option) || option.starts_with("name="))
				mounts.insert_or_assign(std::string(option), mount_point);
	}
	return mounts;
}

ProcCgroups parse_proc_cgroup(std::string_view text)
{
	ProcCgroups out;
	for (std::string_view line : lines(text)) {
		std::size_t first = line.find(':');
		std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
		if (second == std::string_view::npos)
			throw InputError("cgroup membership line '" + printable(line) +
					 "': not id:controllers:path");
		std::string_view controllers = line.substr(first + 1, second - first - 1);
		std::string path(line.substr(second + 1));
		if (!is_clean_absolute(path))
			throw InputError("cgroup membership line '" + printable(line) +
					 "': path is not absolute");
		if (controllers.empty()) {
			out.insert_or_assign("", path);
			continue;
		}
		for (std::string_view controller : split(controllers, ','))
			if (!controller.empty())
				out.insert_or_assign(std::string(controller), path);
	}
	return out;
}

} // namespace vmmcg
