#include "host.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>
#include <set>
#include <vector>

#include "errors.h"
#include "io.h"
#include "paths.h"

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

std::vector<std::string_view> split(std::string_view text, char sep)
{
	std::vector<std::string_view> parts;
	while (true) {
		std::size_t at = text.find(sep);
		parts.push_back(text.substr(0, at));
		if (at == std::string_view::npos)
			return parts;
		text.remove_prefix(at + 1);
	}
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
	mounts.v1 = parse_v1_mounts(read_file("/proc/self/mountinfo", 1 << 20, ec));
	if (ec)
		throw std::system_error(ec, "reading /proc/self/mountinfo");
	return mounts;
}

std::map<std::string, std::string> parse_v1_mounts(std::string_view mountinfo)
{
	std::map<std::string, std::string> mounts;
	for (std::string_view line : split(mountinfo, '\n')) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		std::vector<std::string_view> fields = split(line, ' ');
		auto dash = std::find(fields.begin(), fields.end(), "-");
		if (fields.size() < 6 || dash == fields.end() || fields.end() - dash < 4 ||
		    dash[1] != "cgroup")
			continue;
		if (fields[3] != "/")
			continue; // a bind mount of a sub-tree: /proc/<pid>/cgroup paths are not relative to
				  // it
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
	while (!text.empty()) {
		std::size_t eol = text.find('\n');
		std::string_view line = text.substr(0, eol);
		text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
		if (line.empty())
			continue;
		std::size_t first = line.find(':');
		std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
		if (second == std::string_view::npos)
			throw InputError("cgroup membership line '" + std::string(line) +
					 "': not id:controllers:path");
		std::string_view controllers = line.substr(first + 1, second - first - 1);
		std::string path(line.substr(second + 1));
		if (!is_clean_absolute(path))
			throw InputError("cgroup membership line '" + std::string(line) +
					 "': path is not absolute");
		if (controllers.empty()) {
			out.insert_or_assign("", path);
			continue;
		}
		while (!controllers.empty()) {
			std::size_t comma = controllers.find(',');
			out.insert_or_assign(std::string(controllers.substr(0, comma)), path);
			controllers.remove_prefix(comma == std::string_view::npos ? controllers.size()
										  : comma + 1);
		}
	}
	return out;
}

} // namespace vmmcg
