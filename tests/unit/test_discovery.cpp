#include "discovery.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <doctest/doctest.h>

#include "config.h"
#include "helpers.h"
#include "procfs.h"
#include "text.h"

using namespace vmmcg;

namespace {

const std::vector<std::string> default_patterns = Config{}.vcpu_thread_patterns;
const std::vector<std::string> default_names = Config{}.vmm_names;

// A /proc/<pid>/stat line: fields 4-21 are filler, field 22 the start time.
std::string stat_line(pid_t pid, const std::string &comm, char state, std::uint64_t start)
{
	return std::to_string(pid) + " (" + comm + ") " + state +
	       " 1 100 100 0 -1 4194560 2000 0 3 0 15 7 0 0 20 0 4 0 " + std::to_string(start) +
	       " 1234567680 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 3 0 0 0 0 0\n";
}

struct FakeThread {
	pid_t tid;
	std::string name;
	std::vector<pid_t> children = {};
};

// A /proc-like tree: <root>/<pid>/{stat,comm,exe,cgroup,task/<tid>/{stat,comm,children,cgroup}}; a
// thread's start time is the process's plus its tid.
class FakeProc
{
public:
	const std::string &root() const { return dir_.path(); }
	ProcFs procfs() const { return ProcFs(dir_.path()); }

	void add(pid_t pid, const std::string &comm, const std::string &exe, std::uint64_t start,
		 std::vector<FakeThread> threads = {}, char state = 'S')
	{
		std::string base = std::to_string(pid);
		dir_.write(base + "/stat", stat_line(pid, comm, state, start));
		dir_.write(base + "/comm", comm + "\n");
		dir_.write(base + "/cgroup", "0::/sandbox\n");
		if (!exe.empty())
			std::filesystem::create_symlink(exe, dir_ / (base + "/exe"));
		if (threads.empty())
			threads.push_back({pid, comm});
		for (const auto &thread : threads) {
			std::string task = base + "/task/" + std::to_string(thread.tid);
			dir_.write(task + "/comm", thread.name + "\n");
			dir_.write(task + "/stat",
				   stat_line(thread.tid, thread.name, 'S', start + thread.tid));
			std::string children;
			for (pid_t child : thread.children)
				children += std::to_string(child) + " ";
			dir_.write(task + "/children", children);
			dir_.write(task + "/cgroup", "0::/sandbox/" + std::to_string(thread.tid) + "\n");
		}
	}

	void set_stat(pid_t pid, const std::string &comm, char state, std::uint64_t start)
	{
		dir_.write(std::to_string(pid) + "/stat", stat_line(pid, comm, state, start));
	}

private:
	unit::TempDir dir_;
};

std::optional<std::uint64_t> start_of(std::string_view line)
{
	auto stat = parse_stat(line);
	return stat ? std::optional(stat->start_time) : std::nullopt;
}

std::optional<char> state_of(std::string_view line)
{
	auto stat = parse_stat(line);
	return stat ? std::optional(stat->state) : std::nullopt;
}

std::optional<std::string_view> comm_of(std::string_view line)
{
	auto stat = parse_stat(line);
	return stat ? std::optional(stat->comm) : std::nullopt;
}

} // namespace

TEST_SUITE("discovery")
{
	TEST_CASE("stat: start time and state")
	{
		std::string line = stat_line(42, "qemu-system-x86", 'S', 123456);
		CHECK(start_of(line) == 123456u);
		CHECK(state_of(line) == 'S');
		CHECK(state_of(stat_line(42, "q", 'Z', 1)) == 'Z');
		CHECK(start_of(stat_line(42, "q", 'R', 0)) == 0u);
		CHECK(start_of(stat_line(42, "q", 'R', UINT64_MAX)) == UINT64_MAX);
	}

	TEST_CASE("stat: comm with spaces, parentheses and a newline")
	{
		for (const std::string &comm : std::vector<std::string>{"CPU 0/KVM", "a) b (c", ")", "((",
									") S 1 2 3", "x)", "a\nb", ""}) {
			CAPTURE(comm);
			std::string line = stat_line(7, comm, 'R', 987654321);
			CHECK(start_of(line) == 987654321u);
			CHECK(state_of(line) == 'R');
		}
	}

	TEST_CASE("stat: truncated or malformed lines")
	{
		std::string line = stat_line(7, "a b", 'S', 55);
		// Cut inside field 22 or before it: the start time is gone or different.
		std::size_t field22 = line.find(" 55 ") + 1;
		for (std::size_t n = 0; n < field22; ++n) {
			CAPTURE(n);
			CHECK_FALSE(start_of(line.substr(0, n)));
		}
		CHECK(start_of(line.substr(0, field22 + 2)) == 55u);
		CHECK_FALSE(start_of(line.substr(0, field22 + 1)) == 55u);
		CHECK_FALSE(state_of(""));
		CHECK_FALSE(state_of("7 (a b"));
		CHECK_FALSE(state_of("7 (a b)"));
		CHECK_FALSE(state_of("7 (a b) "));
		CHECK_FALSE(state_of("7 (a b) SS 1"));
		CHECK_FALSE(state_of("7 (a b) S")); // a line without field 22 is malformed as a whole
		CHECK_FALSE(start_of(
			"no parenthesis at all 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"));
		std::string bad_start = line;
		bad_start.replace(field22, 2, "5x");
		CHECK_FALSE(start_of(bad_start));
		bad_start.replace(field22, 2, "-5");
		CHECK_FALSE(start_of(bad_start));
	}

	TEST_CASE("match_vcpu_name: the default patterns")
	{
		CHECK(match_vcpu_name(default_patterns, "CPU 0/KVM") == 0);
		CHECK(match_vcpu_name(default_patterns, "CPU 12/TCG") == 12);
		CHECK(match_vcpu_name(default_patterns, "CPU 7/KVM") == 7);
		CHECK(match_vcpu_name(default_patterns, "vcpu3") == 3);
		CHECK(match_vcpu_name(default_patterns, "vcpu0") == 0);
		CHECK(match_vcpu_name(default_patterns, "fc_vcpu 1") == 1);
		CHECK(match_vcpu_name(default_patterns, "fc_vcpu 15") == 15);
		CHECK(match_vcpu_name(default_patterns, "CPU 255/KVM") == 255);
	}

	TEST_CASE("match_vcpu_name: names that are not vCPUs")
	{
		for (const char *name : {"",
					 "CPU /KVM",
					 "CPU 01/KVM",
					 "CPU 00/KVM",
					 "CPU 1/KVMx",
					 "CPU 1/KV",
					 "xCPU 1/KVM",
					 "CPU  1/KVM",
					 "CPU 1 /KVM",
					 "CPU 1/kvm",
					 "CPU -1/KVM",
					 "CPU +1/KVM",
					 "CPU 1a/KVM",
					 "CPU 0x1/KVM",
					 "CPU 99999999999/KVM",
					 "vcpu",
					 "vcpu-1",
					 "vcpu 1",
					 "vcpu1x",
					 "fc_vcpu",
					 "fc_vcpu1",
					 "fc_vcpu x",
					 "IO iothread0",
					 "worker",
					 "qemu-system-x86",
					 "IO mon_iothread",
					 "CPU 1/KVM\n",
					 "kvm-nx-lpage-re"}) {
			CAPTURE(name);
			CHECK_FALSE(match_vcpu_name(default_patterns, name));
		}
	}

	TEST_CASE("match_vcpu_name: a negative zero is not an index")
	{
		// std::from_chars<int> takes "-0" as 0; a thread named "CPU -0/KVM" is not vCPU 0.
		CHECK_FALSE(match_vcpu_name(default_patterns, "CPU -0/KVM"));
		CHECK_FALSE(match_vcpu_name(default_patterns, "vcpu-0"));
	}

	TEST_CASE("match_vcpu_name: configured patterns")
	{
		CHECK(match_vcpu_name({"{n}"}, "5") == 5);
		CHECK_FALSE(match_vcpu_name({"{n}"}, ""));
		CHECK(match_vcpu_name({"vcpu-{n}-x"}, "vcpu-8-x") == 8);
		CHECK_FALSE(match_vcpu_name({"vcpu-{n}-x"}, "vcpu--x"));
		CHECK_FALSE(match_vcpu_name({"no placeholder"}, "no placeholder"));
		CHECK(match_vcpu_name({"no placeholder", "t{n}"}, "t2") == 2);
		CHECK_FALSE(match_vcpu_name({}, "CPU 0/KVM"));
	}

	TEST_CASE("names_vmm: a launcher's command line")
	{
		CHECK(names_vmm(default_names, {"/bin/sh", "-c", "exec /usr/bin/qemu-system-x86_64 -m 1"}));
		CHECK(names_vmm(default_names, {"sh", "-c", "qemu-kvm -m 1; echo qemu exited with $?"}));
		CHECK(names_vmm(default_names, {"tini", "--", "/usr/bin/firecracker", "--api-sock", "/s"}));
		CHECK(names_vmm(default_names, {"bash", "-c", "cd /vm&&exec cloud-hypervisor --kernel k"}));
		CHECK(names_vmm(default_names, {"sh", "-c", "VMM=/usr/bin/crosvm; exec $VMM run"}));
		CHECK_FALSE(names_vmm(default_names, {"/bin/sh", "-c", "exec sleep 60"}));
		CHECK_FALSE(names_vmm(default_names, {"sh", "-c", "while :; do date; sleep 5; done"}));
		// qemu-img is no VMM, and a glob matches whole words only.
		CHECK_FALSE(names_vmm(default_names, {"sh", "-c", "qemu-img create d 1G; myqemu-kvm"}));
		CHECK_FALSE(names_vmm(default_names, {}));
		CHECK_FALSE(names_vmm({}, {"qemu-kvm"}));
	}

	TEST_CASE("matches_vmm_name: executable and comm")
	{
		CHECK(matches_vmm_name(default_names, "qemu-system-x86_64", "qemu-system-x86"));
		CHECK(matches_vmm_name(default_names, "qemu-system-x86_64", ""));
		CHECK(matches_vmm_name(default_names, "", "qemu-system-x86"));
		CHECK(matches_vmm_name(default_names, "bash", "qemu-system-x86"));
		CHECK(matches_vmm_name(default_names, "qemu-system-aarch64", "bash"));
		CHECK(matches_vmm_name(default_names, "qemu-kvm", ""));
		CHECK(matches_vmm_name(default_names, "cloud-hypervisor", "cloud-hyperviso"));
		CHECK(matches_vmm_name(default_names, "firecracker", ""));
		CHECK(matches_vmm_name(default_names, "", "firecracker"));
		CHECK(matches_vmm_name(default_names, "", "crosvm"));
		CHECK_FALSE(matches_vmm_name(default_names, "bash", "sh"));
		CHECK_FALSE(matches_vmm_name(default_names, "", ""));
		CHECK_FALSE(matches_vmm_name(default_names, "qemu-img", "qemu-img"));
		CHECK_FALSE(matches_vmm_name(default_names, "qemu-system", "qemu-kvm-x"));
		CHECK_FALSE(matches_vmm_name(default_names, "xfirecracker", "firecracker2"));
		CHECK_FALSE(matches_vmm_name({}, "qemu-kvm", "qemu-kvm"));
		// The comm is truncated to 15 characters: the default glob still finds Cloud Hypervisor by
		// it.
		CHECK(matches_vmm_name(default_names, "", "cloud-hyperviso"));
		CHECK_FALSE(matches_vmm_name(default_names, "", "cloud"));
		CHECK(matches_vmm_name({"cloud-hyperviso*"}, "", "cloud-hyperviso"));
	}

	TEST_CASE("ProcFs: the files of one process")
	{
		FakeProc fake;
		fake.add(100, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 5000);
		ProcFs proc = fake.procfs();
		CHECK(proc.root() == fake.root());
		CHECK(proc.process(100) == ProcessRef{100, 5000});
		CHECK(proc.comm(100) == "qemu-system-x86");
		CHECK(proc.exe_name(100) == "qemu-system-x86_64");
		std::error_code ec;
		CHECK(proc.read(100, "cgroup", ec) == "0::/sandbox\n");
		CHECK_FALSE(ec);
		CHECK(proc.read_task(100, 100, "cgroup", ec) == "0::/sandbox/100\n");
		CHECK_FALSE(ec);
		CHECK(trimmed(proc.read_task(100, 100, "comm", ec)) == "qemu-system-x86");
		CHECK(proc.path(100, "stat") == fake.root() + "/100/stat");
		CHECK(proc.task_path(100, 7, "stat") == fake.root() + "/100/task/7/stat");

		CHECK_FALSE(proc.process(101));
		CHECK(proc.comm(101).empty());
		CHECK(proc.exe_name(101).empty());
		proc.read_task(100, 999, "cgroup", ec);
		CHECK(ec == std::errc::no_such_file_or_directory);
		ec.clear();
		proc.read(101, "cgroup", ec);
		CHECK(ec == std::errc::no_such_file_or_directory);
		ec.clear();
		CHECK(proc.thread_ids(101, ec).empty());
		CHECK(ec == std::errc::no_such_file_or_directory);
	}

	TEST_CASE("ProcFs::exe_name: deleted executables and no executable")
	{
		FakeProc fake;
		fake.add(1, "qemu-kvm", "/usr/libexec/qemu-kvm (deleted)", 1);
		fake.add(2, "kthreadd", "", 1);
		fake.add(3, "x", "relative-name", 1);
		ProcFs proc = fake.procfs();
		CHECK(proc.exe_name(1) == "qemu-kvm");
		CHECK(proc.exe_name(2).empty());
		CHECK(proc.exe_name(3) == "relative-name");
	}

	TEST_CASE("ProcFs::alive: same process, zombie, dead, pid reused")
	{
		FakeProc fake;
		fake.add(100, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 5000);
		ProcFs proc = fake.procfs();
		CHECK(proc.alive({100, 5000}));
		CHECK_FALSE(proc.alive({100, 5001}));
		CHECK_FALSE(proc.alive({100, 0}));
		CHECK_FALSE(proc.alive({101, 5000}));
		fake.set_stat(100, "qemu-system-x86", 'Z', 5000);
		CHECK_FALSE(proc.alive({100, 5000}));
		fake.set_stat(100, "qemu-system-x86", 'X', 5000);
		CHECK_FALSE(proc.alive({100, 5000}));
		fake.set_stat(100, "qemu-system-x86", 'D', 5000);
		CHECK(proc.alive({100, 5000}));
		// The pid now names another process.
		fake.set_stat(100, "sh", 'S', 9000);
		CHECK_FALSE(proc.alive({100, 5000}));
		CHECK(proc.alive({100, 9000}));
	}

	TEST_CASE("ProcFs::children: from every thread's children file")
	{
		FakeProc fake;
		fake.add(10, "launcher", "/bin/launcher", 1,
			 {{10, "launcher", {11, 12}}, {13, "helper", {14}}});
		ProcFs proc = fake.procfs();
		CHECK(proc.children(10) == std::vector<pid_t>{11, 12, 14});
		CHECK(proc.children(99).empty());
	}

	TEST_CASE("find_vmm: the container's process itself")
	{
		FakeProc fake;
		fake.add(100, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 5000,
			 {{100, "qemu-system-x86", {101}}});
		fake.add(101, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 5001);
		ProcFs proc = fake.procfs();
		CHECK(find_vmm(proc, 100, default_names, 4) == ProcessRef{100, 5000});
		CHECK(find_vmm(proc, 100, default_names, 0) == ProcessRef{100, 5000});
	}

	TEST_CASE("find_vmm: a descendant two generations down")
	{
		FakeProc fake;
		fake.add(100, "sh", "/bin/sh", 10, {{100, "sh", {101}}});
		// The VMM is the child of the launcher's second thread.
		fake.add(101, "launcher", "/bin/launcher", 11, {{101, "launcher"}, {105, "launcher", {102}}});
		fake.add(102, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 12);
		ProcFs proc = fake.procfs();
		CHECK(find_vmm(proc, 100, default_names, 4) == ProcessRef{102, 12});
		CHECK(find_vmm(proc, 100, default_names, 2) == ProcessRef{102, 12});
		CHECK(find_vmm(proc, 101, default_names, 1) == ProcessRef{102, 12});
		CHECK_FALSE(find_vmm(proc, 100, default_names, 1));
		CHECK_FALSE(find_vmm(proc, 100, default_names, 0));
	}

	TEST_CASE("find_vmm: breadth first, nearest generation wins")
	{
		FakeProc fake;
		fake.add(1, "init", "/sbin/init", 1, {{1, "init", {2, 3}}});
		fake.add(2, "sh", "/bin/sh", 2, {{2, "sh", {4}}});
		fake.add(3, "firecracker", "/usr/bin/firecracker", 3);
		fake.add(4, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 4);
		ProcFs proc = fake.procfs();
		CHECK(find_vmm(proc, 1, default_names, 4) == ProcessRef{3, 3});
	}

	TEST_CASE("find_vmm: by truncated comm when the executable is unreadable")
	{
		FakeProc fake;
		fake.add(100, "sh", "/bin/sh", 10, {{100, "sh", {101}}});
		fake.add(101, "qemu-system-x86", "", 11);
		CHECK(find_vmm(fake.procfs(), 100, default_names, 4) == ProcessRef{101, 11});
	}

	TEST_CASE("find_vmm: none, gone children, missing process, a loop")
	{
		FakeProc fake;
		fake.add(100, "sh", "/bin/sh", 10, {{100, "sh", {101, 555}}});
		fake.add(101, "sleep", "/bin/sleep", 11, {{101, "sleep", {100}}});
		ProcFs proc = fake.procfs();
		CHECK_FALSE(find_vmm(proc, 100, default_names, 4));
		CHECK_FALSE(find_vmm(proc, 100, default_names, 16));
		CHECK_FALSE(find_vmm(proc, 777, default_names, 4));
		CHECK_FALSE(find_vmm(proc, 100, {}, 4));
		CHECK(find_vmm(proc, 100, {"sleep"}, 4) == ProcessRef{101, 11});
	}

	TEST_CASE("list_threads: names and vCPU indexes, in tid order")
	{
		FakeProc fake;
		fake.add(300, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", 1,
			 {{300, "qemu-system-x86"},
			  {1000, "CPU 1/KVM"},
			  {999, "CPU 0/KVM"},
			  {301, "IO iothread0"},
			  {302, "worker"},
			  {303, "CPU 01/KVM"}});
		std::error_code ec;
		auto threads = list_threads(fake.procfs(), 300, default_patterns, ec);
		CHECK_FALSE(ec);
		REQUIRE(threads.size() == 6);
		const pid_t tids[] = {300, 301, 302, 303, 999, 1000};
		for (std::size_t i = 0; i < 6; ++i)
			CHECK(threads[i].tid == tids[i]);
		CHECK(threads[0].name == "qemu-system-x86");
		CHECK_FALSE(threads[0].vcpu);
		CHECK(threads[1].name == "IO iothread0");
		CHECK_FALSE(threads[1].vcpu);
		CHECK_FALSE(threads[2].vcpu);
		CHECK(threads[3].name == "CPU 01/KVM");
		CHECK_FALSE(threads[3].vcpu);
		CHECK(threads[4].name == "CPU 0/KVM");
		CHECK(threads[4].vcpu == 0);
		CHECK(threads[5].vcpu == 1);
		CHECK(threads[5].start_time == 1001);

		auto none = list_threads(fake.procfs(), 300, {"vcpu{n}"}, ec);
		REQUIRE(none.size() == 6);
		for (const auto &thread : none)
			CHECK_FALSE(thread.vcpu);
	}

	TEST_CASE("list_threads: names with spaces and parentheses come from stat whole; a thread without "
		  "stat is gone")
	{
		FakeProc fake;
		fake.add(40, "vmm", "/usr/bin/cloud-hypervisor", 7,
			 {{40, "vmm"}, {41, "CPU 3/KVM"}, {42, "a) b (c"}});
		std::filesystem::remove(fake.root() + "/40/task/40/stat");
		std::error_code ec;
		auto threads = list_threads(fake.procfs(), 40, default_patterns, ec);
		REQUIRE(threads.size() == 2);
		CHECK(threads[0].name == "CPU 3/KVM");
		CHECK(threads[0].vcpu == 3);
		CHECK(threads[0].start_time == 48);
		CHECK(threads[1].name == "a) b (c");
		CHECK(comm_of(stat_line(12, "x", 'S', 1)) == std::optional<std::string_view>("x"));
		CHECK_FALSE(comm_of("12 x) S ("));
		CHECK_FALSE(comm_of(""));
	}

	TEST_CASE("list_threads: a process that is gone")
	{
		FakeProc fake;
		std::error_code ec;
		CHECK(list_threads(fake.procfs(), 300, default_patterns, ec).empty());
		CHECK(ec);
	}

	TEST_CASE("list_threads: entries that are not thread ids are ignored")
	{
		FakeProc fake;
		fake.add(5, "vmm", "/usr/bin/crosvm", 1, {{5, "vmm"}, {6, "vcpu0"}});
		std::filesystem::create_directories(fake.root() + "/5/task/self");
		std::filesystem::create_directories(fake.root() + "/5/task/0");
		std::filesystem::create_directories(fake.root() + "/5/task/-7");
		std::filesystem::create_directories(fake.root() + "/5/task/12x");
		std::error_code ec;
		auto threads = list_threads(fake.procfs(), 5, default_patterns, ec);
		CHECK_FALSE(ec);
		REQUIRE(threads.size() == 2);
		CHECK(threads[0].tid == 5);
		CHECK(threads[1].tid == 6);
		CHECK(threads[1].vcpu == 0);
	}
}
