#include "systemd.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "text.h"

#ifndef VMMCG_LIBEXEC_DIR
#define VMMCG_LIBEXEC_DIR "/usr/libexec/vmm-cgroup-hooks"
#endif

namespace vmmcg {

namespace {

// The helper is installed beside the hooks: found from this executable's own path, so that a tree
// installed under another prefix than the one it was built for (a package, the node suite's guest) finds
// its own helper; the configured libexec directory where /proc/self/exe cannot be read.
std::string helper_path()
{
	char self[4096];
	ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
	std::string dir = VMMCG_LIBEXEC_DIR;
	if (n > 0) {
		std::string exe(self, static_cast<std::size_t>(n));
		if (exe.starts_with('/') && exe.find('/') != exe.rfind('/'))
			dir = exe.substr(0, exe.rfind('/'));
	}
	return dir + "/vmm-cgroup-systemd";
}

// Runs the helper with these arguments, no shell, stdio inherited; true on exit 0. Bounded by the helper's
// own D-Bus timeout.
bool run_helper(const char *command, const std::string &a, const std::string &b = {})
{
	std::string helper = helper_path();
	const char *argv[] = {helper.c_str(), command, a.c_str(), b.empty() ? nullptr : b.c_str(), nullptr};
	pid_t child = ::fork();
	if (child < 0)
		return false;
	if (child == 0) {
		// An empty environment: nothing of the caller's (DBUS_SYSTEM_BUS_ADDRESS) steers the helper.
		char *no_environment[] = {nullptr};
		::execve(helper.c_str(), const_cast<char **>(argv), no_environment);
		::_exit(127);
	}
	int status = 0;
	while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
	}
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok)
		spdlog::warn("{} {} {}: failed (status {})", helper, command, printable(a), status);
	return ok;
}

} // namespace

bool systemd_running()
{
	return ::access("/run/systemd/system", F_OK) == 0;
}

std::optional<std::string> unit_of_cgroup(std::string_view cgroup)
{
	std::string_view name = cgroup.substr(cgroup.rfind('/') + 1);
	for (std::string_view suffix : {".scope", ".service"})
		if (name.size() > suffix.size() && name.ends_with(suffix))
			return std::string(name);
	return std::nullopt;
}

bool set_unit_cpu_quota_infinity(const std::string &unit)
{
	return run_helper("cpu-quota-infinity", unit);
}

bool set_unit_cpu_quota(const std::string &unit, std::uint64_t per_second_usec)
{
	return run_helper("cpu-quota", unit, std::to_string(per_second_usec));
}

bool move_to_own_scope(pid_t pid, const std::string &name)
{
	return run_helper("own-scope", std::to_string(pid), name);
}

} // namespace vmmcg
