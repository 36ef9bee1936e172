// vmm-cgroup-systemd: what the hooks ask systemd, over D-Bus with libsystemd's sd-bus. The hooks are static
// executables and run this helper only on systemd hosts, only when systemd must be told (common/systemd.h).
//
// cpu-quota-infinity UNIT: SetUnitProperties(UNIT, runtime, CPUQuotaPerSecUSec=infinity).
// cpu-quota UNIT USEC: SetUnitProperties(UNIT, runtime, CPUQuotaPerSecUSec=USEC): the unit's quota back.
// own-scope PID NAME: StartTransientUnit(vmm-cgroup-hooks-NAME.scope) holding PID, in
// vmm-cgroup-hooks.slice, CPUQuota=20%, removed when it exits.
//
// Exit status 0 when systemd did it, 1 when it refused or could not be reached, 2 for bad arguments.
#include <systemd/sd-bus.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr std::uint64_t bus_timeout_usec = 5'000'000;

struct Bus {
	sd_bus *bus = nullptr;
	sd_bus_message *message = nullptr;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	~Bus()
	{
		sd_bus_error_free(&error);
		sd_bus_message_unref(message);
		sd_bus_flush_close_unref(bus);
	}
};

int fail(const char *what, int r, const sd_bus_error *error = nullptr)
{
	std::fprintf(stderr, "vmm-cgroup-systemd: %s: %s\n", what,
		     error && sd_bus_error_is_set(error) ? error->message : std::strerror(-r));
	return 1;
}

int call_manager(Bus &b, const char *method)
{
	int r = sd_bus_open_system(&b.bus);
	if (r < 0)
		return fail("connecting to the system bus", r);
	r = sd_bus_message_new_method_call(b.bus, &b.message, "org.freedesktop.systemd1",
					   "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
					   method);
	return r < 0 ? fail(method, r) : 0;
}

int send(Bus &b, const char *method)
{
	int r = sd_bus_call(b.bus, b.message, bus_timeout_usec, &b.error, nullptr);
	return r < 0 ? fail(method, r, &b.error) : 0;
}

int cpu_quota(const char *unit, std::uint64_t per_second_usec)
{
	Bus b;
	if (call_manager(b, "SetUnitProperties") != 0)
		return 1;
	int r = sd_bus_message_append(b.message, "sba(sv)", unit, 1, 1, "CPUQuotaPerSecUSec", "t",
				      per_second_usec);
	return r < 0 ? fail("SetUnitProperties", r) : send(b, "SetUnitProperties");
}

// A quota in microseconds per second: digits only, at least 1 ms (systemd's own floor), at most 1000 CPUs.
bool parse_quota(const char *text, std::uint64_t &out)
{
	char *end = nullptr;
	unsigned long long value = std::strtoull(text, &end, 10);
	if (*text < '0' || *text > '9' || *end != '\0' || value < 1000 || value > 1'000'000'000ULL)
		return false;
	out = value;
	return true;
}

int own_scope(const char *pid_text, const char *name)
{
	char *end = nullptr;
	unsigned long pid = std::strtoul(pid_text, &end, 10);
	if (*pid_text == '\0' || *end != '\0' || pid == 0 || pid > 4194304)
		return 2;
	std::string unit = std::string("vmm-cgroup-hooks-") + name + ".scope";
	Bus b;
	if (call_manager(b, "StartTransientUnit") != 0)
		return 1;
	int r = sd_bus_message_append(b.message, "ssa(sv)a(sa(sv))", unit.c_str(), "fail", 5, "PIDs", "au", 1,
				      static_cast<std::uint32_t>(pid), "Slice", "s", "vmm-cgroup-hooks.slice",
				      "Description", "s", "vmm-cgroup-hooks watcher", "CollectMode", "s",
				      "inactive-or-failed", "CPUQuotaPerSecUSec", "t", std::uint64_t(200000),
				      0);
	return r < 0 ? fail("StartTransientUnit", r) : send(b, "StartTransientUnit");
}

} // namespace

int main(int argc, char **argv)
{
	std::string command = argc > 1 ? argv[1] : "";
	if (command == "cpu-quota-infinity" && argc == 3)
		return cpu_quota(argv[2], UINT64_MAX);
	if (command == "cpu-quota" && argc == 4) {
		std::uint64_t usec = 0;
		return parse_quota(argv[3], usec) ? cpu_quota(argv[2], usec) : 2;
	}
	if (command == "own-scope" && argc == 4)
		return own_scope(argv[2], argv[3]);
	if (command == "--version") {
		std::printf("vmm-cgroup-systemd %s\n", VMMCG_VERSION);
		return 0;
	}
	std::fprintf(command == "--help" ? stdout : stderr,
		     "Usage: vmm-cgroup-systemd cpu-quota-infinity UNIT | cpu-quota UNIT USEC | own-scope "
		     "PID NAME | "
		     "--help | "
		     "--version\n"
		     "What the vmm-cgroup-hooks ask systemd; run by the hooks, not by hand. See "
		     "vmm-cgroup-hooks(8).\n");
	return command == "--help" ? 0 : 2;
}
