// The security model, tried as a hostile container author would (docs/security.md): each case is an attack
// that must fail against the built hooks, with nothing left on the host.
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "backend.h"
#include "cgroup_utils.h"
#include "cgroupfs.h"
#include "harness.h"
#include "placement.h"
#include "procfs.h"
#include "record.h"
#include "scope_exit.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point start)
{
	return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string cgroup_dir(const std::string &controller, const std::string &path)
{
	return "/sys/fs/cgroup/" + controller + path;
}

std::string read_text(const std::string &path)
{
	std::ifstream in(path);
	std::stringstream buf;
	buf << in.rdbuf();
	std::string text = buf.str();
	while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
		text.pop_back();
	return text;
}

void write_text(const std::string &path, const std::string &text)
{
	std::ofstream out(path);
	out << text;
	out.flush();
	REQUIRE_MESSAGE(out.good(), "writing '" << text << "' to " << path);
}

// Where a task is in one hierarchy ("" when it is gone).
std::string where(pid_t pid, pid_t tid, const std::string &controller)
{
	std::error_code ec;
	std::string text = vmmcg::ProcFs().read_task(pid, tid, "cgroup", ec);
	if (ec)
		return "";
	auto cgroups = vmmcg::parse_proc_cgroup(text);
	auto it = cgroups.find(controller);
	return it == cgroups.end() ? "" : it->second;
}

std::string where(pid_t pid, const std::string &controller)
{
	return where(pid, pid, controller);
}

const std::vector<std::string> &all_controllers()
{
	static const std::vector<std::string> all = [] {
		std::vector<std::string> list = Sandbox::cpu_controllers();
		for (const auto &c : Sandbox::other_controllers())
			list.push_back(c);
		return list;
	}();
	return all;
}

// Nothing moved: every thread of the container's process in S in every hierarchy, nothing in O.
void check_nothing_moved(const Sandbox &sb)
{
	auto threads = sb.threads();
	REQUIRE(!threads.empty());
	for (const auto &t : threads)
		for (const auto &c : all_controllers()) {
			INFO("thread " << t.tid << " '" << t.name << "' in " << c);
			CHECK(t.where.at(c) == sb.sandbox_path());
		}
	for (const auto &c : Sandbox::cpu_controllers())
		CHECK(read_text(cgroup_dir(c, sb.overhead_path()) + "/tasks").empty());
}

// Split on v1: vCPU threads in S, the others in O, in the CPU hierarchies; all in S in the others.
void check_split(const Sandbox &sb, std::size_t expected_vcpus)
{
	auto threads = sb.threads();
	REQUIRE(!threads.empty());
	std::size_t vcpus = 0;
	for (const auto &t : threads) {
		bool vcpu = is_vcpu_name(t.name);
		vcpus += vcpu;
		for (const auto &c : all_controllers()) {
			bool split = std::find(Sandbox::cpu_controllers().begin(),
					       Sandbox::cpu_controllers().end(),
					       c) != Sandbox::cpu_controllers().end();
			INFO("thread " << t.tid << " '" << t.name << "' in " << c);
			CHECK(t.where.at(c) == (split && !vcpu ? sb.overhead_path() : sb.sandbox_path()));
		}
	}
	CHECK(vcpus == expected_vcpus);
}

// What is in the record directory, for a failing check to show.
std::string record_dir_listing(const Sandbox &sb)
{
	std::string names;
	std::error_code ec;
	for (const auto &entry : fs::directory_iterator(sb.record_dir(), ec))
		names += " " + entry.path().filename().string();
	return names;
}

// No file of any instance left in the record directory (records, temp files).
bool record_dir_empty(const Sandbox &sb)
{
	std::error_code ec;
	bool empty = !fs::exists(sb.record_dir(), ec) || fs::is_empty(sb.record_dir(), ec);
	if (!empty)
		MESSAGE("left in " << sb.record_dir() << ":" << record_dir_listing(sb));
	return empty;
}

// Nanoseconds on CPU of the VMM's threads whose names start with prefix (schedstat, field 1).
std::uint64_t cpu_ns(pid_t pid, const std::string &prefix)
{
	std::uint64_t total = 0;
	std::error_code ec;
	for (const auto &entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
		if (read_text(entry.path() / "comm").rfind(prefix, 0) != 0)
			continue;
		std::istringstream in(read_text(entry.path() / "schedstat"));
		std::uint64_t ns = 0;
		in >> ns;
		total += ns;
	}
	return total;
}

// The CPUs a process of pid's can use per second, measured over `window`.
double cpus_used(pid_t pid, const std::string &prefix, std::chrono::milliseconds window)
{
	std::uint64_t before = cpu_ns(pid, prefix);
	auto start = Clock::now();
	std::this_thread::sleep_for(window);
	std::uint64_t after = cpu_ns(pid, prefix);
	return static_cast<double>(after - before) / 1e9 / seconds_since(start);
}

// A process forked with a chosen pid: /proc/sys/kernel/ns_last_pid (root, initial pid namespace) makes
// the next clone on the host get want, unless another task on the host forks in between (the caller
// checks the pid it got). The child writes itself into the cgroup.procs files given (as a runtime puts
// a process it execs into a container) and tells the parent through a pipe, then pauses.
pid_t fork_with_pid(pid_t want, const std::vector<std::string> &join)
{
	std::vector<const char *> files; // prepared before fork: the child only makes system calls
	for (const auto &f : join)
		files.push_back(f.c_str());
	int ready[2];
	REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
	int fd = -1;
	bool written = true;
	if (want > 0) { // 0: any pid
		fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		REQUIRE_MESSAGE(fd >= 0, "/proc/sys/kernel/ns_last_pid: " << std::strerror(errno));
		std::string last = std::to_string(want - 1);
		written = ::write(fd, last.data(), last.size()) == static_cast<ssize_t>(last.size());
	}
	pid_t child = written ? ::fork() : -1;
	if (child == 0) {
		for (const char *file : files) {
			int cg = ::open(file, O_WRONLY);
			if (cg < 0 || ::write(cg, "0", 1) != 1)
				::_exit(126);
			::close(cg);
		}
		::close(ready[0]);
		(void)!::write(ready[1], "x", 1);
		for (;;)
			::pause();
	}
	if (fd >= 0)
		::close(fd);
	::close(ready[1]);
	char byte;
	if (child > 0)
		(void)!::read(ready[0], &byte, 1);
	::close(ready[0]);
	REQUIRE_MESSAGE(written, "writing /proc/sys/kernel/ns_last_pid: " << std::strerror(errno));
	REQUIRE(child > 0);
	return child;
}

void end_process(pid_t pid)
{
	if (pid <= 0)
		return;
	::kill(pid, SIGKILL);
	::waitpid(pid, nullptr, 0);
}

// Polls without sleeping much: for the moments of a race, not for timing.
bool spin_until(const std::function<bool()> &pred, std::chrono::milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	while (Clock::now() < deadline) {
		if (pred())
			return true;
		std::this_thread::sleep_for(50us);
	}
	return pred();
}

std::vector<pid_t> vcpu_tids(const Sandbox &sb)
{
	std::vector<pid_t> tids;
	for (const auto &t : sb.threads())
		if (is_vcpu_name(t.name))
			tids.push_back(t.tid);
	std::sort(tids.begin(), tids.end());
	return tids;
}

// A QMP peer in this test process (not the VMM) that answers as QEMU would, naming the given thread ids
// as the vCPUs.
class ForgedQmp
{
public:
	ForgedQmp(const std::string &path, std::vector<pid_t> tids) : path_(path), tids_(std::move(tids))
	{
		fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
		REQUIRE(::listen(fd_, 16) == 0);
		thread_ = std::thread([this] { serve(); });
	}
	~ForgedQmp()
	{
		::shutdown(fd_, SHUT_RDWR);
		thread_.join();
		::close(fd_);
		::unlink(path_.c_str());
	}
	int connections() const { return connections_; }

private:
	void serve()
	{
		for (;;) {
			int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (client < 0)
				return;
			++connections_;
			std::string cpus;
			for (std::size_t i = 0; i < tids_.size(); ++i)
				cpus += (i ? "," : "") + std::string(R"({"cpu-index":)") + std::to_string(i) +
					R"(,"thread-id":)" + std::to_string(tids_[i]) + "}";
			std::string text = R"({"QMP":{"version":{},"capabilities":[]}})"
					   "\n"
					   R"({"return":{}})"
					   "\n"
					   R"({"return":[)" +
					   cpus + "]}\n";
			(void)!::send(client, text.data(), text.size(), MSG_NOSIGNAL);
			std::this_thread::sleep_for(50ms);
			::close(client);
		}
	}
	std::string path_;
	std::vector<pid_t> tids_;
	int fd_ = -1;
	std::atomic<int> connections_{0};
	std::thread thread_;
};

// Every line a hook wrote is one of its own, none longer than the bound.
void check_lines(const std::string &err, const std::string &prefix)
{
	std::size_t start = 0;
	while (start < err.size()) {
		std::size_t end = err.find('\n', start);
		std::string line = err.substr(start, end - start);
		CHECK_MESSAGE(line.starts_with(prefix), line.substr(0, 200));
		CHECK(line.size() < 2200);
		start = end == std::string::npos ? err.size() : end + 1;
	}
}

} // namespace

TEST_SUITE("hostile")
{
	TEST_CASE("every hook ends: a state pipe left open")
	{
		Sandbox sb("stdin-open");
		sb.start_test_vmm({"--vcpus", "1"});
		for (const char *stage : {"create-runtime", "poststart", "poststop"}) {
			CAPTURE(stage);
			auto start = Clock::now();
			HookRun run = sb.run(stage, sb.state(), false);
			CHECK(seconds_since(start) < 15);
			CHECK(run.status == 2);
			CHECK(run.err.find("not closed within") != std::string::npos);
		}
		CHECK(sb.overhead_gone());
		CHECK_FALSE(fs::exists(sb.record_file()));
	}

	TEST_CASE("every hook ends: config.json as a FIFO, or a symbolic link to /proc/kmsg or a device")
	{
		Sandbox sb("bundle-files");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string spec = sb.bundle_dir() + "/config.json";
		auto hostile = [&](const std::function<void()> &make, const char *needle) {
			fs::remove(spec);
			make();
			auto start = Clock::now();
			HookRun run = sb.create_runtime();
			CHECK(seconds_since(start) < 5);
			CHECK(run.status == 2);
			CHECK_MESSAGE(run.err.find(needle) != std::string::npos, run.err);
			CHECK(sb.overhead_gone());
			CHECK_FALSE(fs::exists(sb.record_file()));
		};
		hostile([&] { REQUIRE(::mkfifo(spec.c_str(), 0600) == 0); }, "not a regular file");
		hostile([&] { fs::create_symlink("/proc/kmsg", spec); }, "symbolic link");
		hostile([&] { fs::create_symlink("/dev/zero", spec); }, "symbolic link");
		hostile([&] { fs::create_directory(spec); }, "not a regular file");
		// poststart without a record reads config.json too, to tell a container that did not ask.
		fs::remove_all(spec);
		REQUIRE(::mkfifo(spec.c_str(), 0600) == 0);
		auto start = Clock::now();
		CHECK(sb.poststart().status == 2);
		CHECK(seconds_since(start) < 5);
		fs::remove(spec);
	}

	TEST_CASE("logs cannot be forged: a newline in a refused annotation, a 200 KB value")
	{
		Sandbox sb("forge");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string forged =
			"x\\nvmm-cgroup-hooks poststop id=some-other-container: info: cleaned up";
		sb.annotate(R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.mode":")" + forged +
			    R"(","io.vmm-cgroup-hooks.qmp-socket":")" + std::string(200000, 'a') + R"("})");
		HookRun created = sb.create_runtime();
		CHECK(created.status == 0);
		// Every line the hook wrote is its own: no forged one, none longer than the bound.
		std::size_t lines = 0, start = 0;
		while (start < created.err.size()) {
			std::size_t end = created.err.find('\n', start);
			std::string line = created.err.substr(start, end - start);
			CHECK(line.starts_with("vmm-cgroup-hooks createRuntime id=" + sb.id() + ": "));
			CHECK(line.size() < 2200);
			++lines;
			start = end == std::string::npos ? created.err.size() : end + 1;
		}
		CHECK(lines >= 2); // the two refusals
		CHECK(created.err.find("\nvmm-cgroup-hooks poststop") == std::string::npos);
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
	}
}

// 1. Nothing moves without a VMM; what a VMM's overhead may use is bounded where the node accounts for it.
TEST_SUITE("hostile")
{
	TEST_CASE("opt_in runtime: the enable annotation alone makes nothing; the runtime's gate does")
	{
		Sandbox sb("optin");
		sb.set_opt_in("runtime");
		sb.start_test_vmm({"--vcpus", "2"});
		HookRun ignored = sb.create_runtime();
		CHECK_MESSAGE(ignored.status == 0, ignored.err);
		CHECK(ignored.err.find("ignored") != std::string::npos);
		CHECK_FALSE(std::filesystem::exists(sb.record_file()));
		CHECK(sb.overhead_gone());
		CHECK(sb.poststart().status == 0);
		check_nothing_moved(sb);
		// The same container through the node owner's handler: split.
		sb.set_runtime_gate(true);
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		CHECK(std::filesystem::exists(sb.record_file()));
		CHECK_FALSE(sb.overhead_gone());
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("CPU-limit escape: an impostor named like a VMM, without KVM fds, moves nothing")
	{
		Sandbox sb("impostor");
		sb.start_test_vmm({"--no-kvm", "--vcpus", "4", "--spin"});
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		check_nothing_moved(sb);
		// A settler may keep looking (the name is a VMM's): it moves nothing either.
		std::this_thread::sleep_for(500ms);
		check_nothing_moved(sb);
		CHECK(sb.record()["vcpus"].empty());
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
	}

	TEST_CASE("CPU-limit escape: a shell that renamed itself qemu-system-x86 moves nothing")
	{
		Sandbox sb("comm");
		sb.start({"/bin/sh", "-c",
			  "printf qemu-system-x86 > /proc/$$/comm; while :; do sleep 1; done"});
		REQUIRE(wait_until([&] {
			return read_text("/proc/" + std::to_string(sb.vmm()) + "/comm") == "qemu-system-x86";
		}));
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		std::this_thread::sleep_for(300ms);
		check_nothing_moved(sb);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("CPU-limit escape: real KVM fds, but more vCPU-named threads than vCPU fds, moves nothing")
	{
		Sandbox sb("fewfds");
		sb.start_test_vmm({"--vcpus", "4", "--kvm-vcpus", "2", "--spin"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		std::this_thread::sleep_for(300ms);
		check_nothing_moved(sb);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a real KVM VMM is placed: O beside S, S's cpuset, cpuacct with the container, the derived "
		  "cap "
		  "bounds the overhead")
	{
		Sandbox sb("bounded");
		// The container's limits, as a runtime sets them before createRuntime: 0.5 CPU, pinned to
		// one CPU.
		std::string cpu = read_text(cgroup_dir("cpuset", sb.sandbox_path()) + "/cpuset.cpus");
		std::string one = cpu.substr(0, cpu.find_first_of(",-"));
		write_text(cgroup_dir("cpuset", sb.sandbox_path()) + "/cpuset.cpus", one);
		write_text(cgroup_dir("cpu", sb.sandbox_path()) + "/cpu.cfs_quota_us", "50000");
		sb.start_test_vmm({"--vcpus", "2", "--io-threads", "4", "--spin-io"});
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		check_split(sb, 2); // cpuacct among the hierarchies where every thread stays in S

		std::string parent = sb.sandbox_path().substr(0, sb.sandbox_path().rfind('/'));
		CHECK(sb.overhead_path() == parent + "/vmm-overhead-" + sb.instance());
		for (const auto &c : Sandbox::cpu_controllers())
			CHECK(fs::is_directory(cgroup_dir(c, sb.overhead_path())));
		for (const auto &c : Sandbox::other_controllers())
			CHECK_FALSE(fs::exists(cgroup_dir(c, sb.overhead_path())));
		CHECK(read_text(cgroup_dir("cpuset", sb.overhead_path()) + "/cpuset.cpus") == one);
		// 25% of 0.5 CPU is 125m, below the 250m floor: 25000 us per 100000 us.
		CHECK(read_text(cgroup_dir("cpu", sb.overhead_path()) + "/cpu.cfs_quota_us") == "25000");
		CHECK(read_text(cgroup_dir("cpu", sb.overhead_path()) + "/cpu.cfs_period_us") == "100000");

		// Four spinning I/O threads would take the whole CPU (they took 1.99 CPUs before): the cap
		// holds them to 0.25 of it. A bound, with a generous margin.
		double used = cpus_used(sb.vmm(), "IO iothread", 2000ms);
		MESSAGE("4 spinning overhead threads, O capped at 250m: " << used << " CPUs");
		CHECK(used < 0.40);

		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
	}

	TEST_CASE(
		"an uncapped overhead side (overhead_cap_percent 0) is placed as configured, with a warning")
	{
		const std::string warning = "has no CPU limit of its own";
		for (bool capped : {true, false}) {
			Sandbox sb(capped ? "capped" : "uncapped");
			if (!capped)
				sb.configure(R"("overhead_cap_percent":0)");
			write_text(cgroup_dir("cpu", sb.sandbox_path()) + "/cpu.cfs_quota_us", "50000");
			sb.start_test_vmm({"--vcpus", "2"});
			HookRun created = sb.create_runtime();
			INFO("capped " << capped << ": " << created.err);
			REQUIRE(created.status == 0);
			CHECK((created.err.find(warning) == std::string::npos) == capped);
			CHECK(read_text(cgroup_dir("cpu", sb.overhead_path()) + "/cpu.cfs_quota_us") ==
			      (capped ? "25000" : "-1"));
			CHECK(sb.poststop().status == 0);
		}
	}

	TEST_CASE("a child the VMM forks after placement: the watcher returns it to S within a second")
	{
		Sandbox sb("forkwatch");
		sb.start_test_vmm({"--vcpus", "2", "--fork-after-ms", "1000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		pid_t child = 0;
		REQUIRE(wait_until([&] {
			std::istringstream in(read_text("/proc/" + std::to_string(sb.vmm()) + "/task/" +
							std::to_string(sb.vmm()) + "/children"));
			return static_cast<bool>(in >> child);
		}));
		CHECK(wait_until(
			[&] {
				for (const auto &c : all_controllers())
					if (where(child, c) != sb.sandbox_path())
						return false;
				return true;
			},
			2000));
		check_split(sb, 2);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a child the VMM forks after placement lands in O and goes back to S at the next pass")
	{
		Sandbox sb("forks");
		sb.configure(R"("watch_vmm":false)"); // the pass alone, with no watcher to do it first
		sb.start_test_vmm({"--vcpus", "2", "--fork-after-ms", "1000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		check_split(sb, 2);
		pid_t child = 0;
		REQUIRE(wait_until([&] {
			std::istringstream in(read_text("/proc/" + std::to_string(sb.vmm()) + "/task/" +
							std::to_string(sb.vmm()) + "/children"));
			return static_cast<bool>(in >> child);
		}));
		// Born of the main thread, in O: under O's cap, outside the container's own limit.
		for (const auto &c : Sandbox::cpu_controllers())
			CHECK(where(child, c) == sb.overhead_path());
		// The next pass (a settler's, or any placement of this VMM) returns it to S.
		auto record = vmmcg::read_record(sb.record_dir(), sb.instance(), sb.id());
		REQUIRE(record);
		std::unique_ptr<vmmcg::Backend> backend = vmmcg::make_backend(record->cgroups);
		vmmcg::ProcFs proc;
		auto vmm = proc.process(sb.vmm());
		REQUIRE(vmm);
		std::error_code ec;
		vmmcg::TaskDir tasks(proc, vmm->pid);
		auto listed = vmmcg::list_threads(tasks, vmmcg::Config().vcpu_thread_patterns, ec);
		REQUIRE_FALSE(ec);
		backend->place(proc, *vmm, tasks, listed, Clock::now() + 5s);
		for (const auto &c : all_controllers())
			CHECK(where(child, c) == sb.sandbox_path());
		check_split(sb, 2);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}

// 2. Only this VMM's tasks are ever moved.
namespace {

// The outcome of one try of the tid race through the built poststart; nullopt when the window was missed.
struct TidRace {
	pid_t tid = 0;
	std::string err;         // poststart's
	std::string cpu, cpuset; // where the task that took the tid is, after poststart
	std::string born_in;     // where it was before (its own choice, or this test's cgroup)
};

std::optional<TidRace> tid_race(const std::string &name, bool joins_container)
{
	Sandbox sb(name);
	// Names as the proof: 1,500 vCPU threads (more than KVM gives one VM here) make the window of a
	// pass (its membership read, then one write per vCPU and hierarchy) some 10 ms wide.
	sb.configure(R"("vcpu_proof":"names","poststart_budget_ms":5000,"max_vmm_threads":8192)");
	pid_t vmm = sb.start_test_vmm({"--no-kvm", "--vcpus", "1500", "--io-threads", "1", "--exit-on-usr1"});
	REQUIRE(sb.create_runtime().status == 0);
	std::vector<pid_t> vcpus = vcpu_tids(sb);
	REQUIRE(vcpus.size() == 1500);
	pid_t first = vcpus.front(), before_last = vcpus[vcpus.size() - 2], target = vcpus.back();
	const std::string S = sb.sandbox_path(), O = sb.overhead_path();
	std::vector<std::string> join;
	if (joins_container)
		for (const auto &c : all_controllers())
			join.push_back(cgroup_dir(c, S) + "/cgroup.procs");

	RunningHook hook = sb.spawn("poststart", sb.state());
	pid_t taker = 0;
	vmmcg::ScopeExit cleanup([&] {
		if (hook.pid > 0)
			sb.finish(hook);
		end_process(taker);
	});
	// The pass has read membership once the group is in O and the first vCPU back in S; the target,
	// listed and read as the VMM's, is written last.
	bool moving =
		spin_until([&] { return where(vmm, "cpu") == O && where(vmm, first, "cpu") == S; }, 10s);
	if (!moving)
		return std::nullopt;
	::syscall(SYS_tgkill, vmm, target, SIGUSR1);
	if (!spin_until(
		    [&] {
			    return !fs::exists("/proc/" + std::to_string(vmm) + "/task/" +
					       std::to_string(target));
		    },
		    2s))
		return std::nullopt;
	taker = fork_with_pid(target, join);
	// The window was hit when the tid is the taker's while the pass has not reached it yet.
	bool hit = taker == target && where(vmm, before_last, "cpu") == O;
	TidRace race;
	race.tid = target;
	race.born_in = where(taker, "cpu");
	race.err = sb.finish(hook).err;
	race.cpu = where(taker, "cpu");
	race.cpuset = where(taker, "cpuset");
	// The VMM's own threads are placed whatever happened to the one that left.
	for (const auto &t : sb.threads())
		if (!is_vcpu_name(t.name))
			CHECK(t.where.at("cpu") == O);
	end_process(taker);
	taker = 0;
	CHECK(sb.poststop().status == 0);
	CHECK(sb.overhead_gone());
	if (!hit)
		return std::nullopt;
	return race;
}

} // namespace

TEST_SUITE("hostile")
{
	TEST_CASE("a reused tid: a host process that takes a listed vCPU's tid mid-pass is not left in the "
		  "container's cgroups")
	{
		std::optional<TidRace> race;
		for (int attempt = 0; attempt < 6 && !race; ++attempt)
			race = tid_race("tidhost" + std::to_string(attempt), false);
		REQUIRE_MESSAGE(race, "the race window was not hit in 6 tries (ns_last_pid, a busy host?)");
		INFO(race->err);
		std::string self_cpu = where(::getpid(), "cpu");
		CHECK(race->born_in == self_cpu);
		CHECK(race->cpu == self_cpu);
		CHECK(race->cpuset == where(::getpid(), "cpuset"));
	}

	TEST_CASE("a reused tid: a container process (its parent outside, as an exec'd one's) that takes a "
		  "listed vCPU's tid stays in the container's cgroups")
	{
		std::optional<TidRace> race;
		for (int attempt = 0; attempt < 6 && !race; ++attempt)
			race = tid_race("tidexec" + std::to_string(attempt), true);
		REQUIRE_MESSAGE(race, "the race window was not hit in 6 tries (ns_last_pid, a busy host?)");
		INFO(race->err);
		std::string S = race->born_in; // it joined S itself before the pass reached its tid
		CHECK(S.find("/tidexec") != std::string::npos);
		// Moved to O or left in S: either is the container's. Its parent's cgroup is not.
		CHECK(race->cpu.find("/vmmcg-it-") == 0);
		CHECK(race->cpuset.find("/vmmcg-it-") == 0);
	}

	TEST_CASE("the owner check (library): a task listed as the VMM's but not its thread is never left "
		  "moved")
	{
		Sandbox sb("owner");
		pid_t vmm = sb.start_test_vmm({"--vcpus", "1"});
		REQUIRE(sb.create_runtime().status == 0);
		const std::string S = sb.sandbox_path(), O = sb.overhead_path();
		std::string self_cpu = where(::getpid(), "cpu");
		// A host process, and a container process whose parent is outside (as an exec'd one is).
		pid_t host = fork_with_pid(0, {});
		vmmcg::ScopeExit end_host([&] { end_process(host); });
		std::vector<std::string> join;
		for (const auto &c : all_controllers())
			join.push_back(cgroup_dir(c, S) + "/cgroup.procs");
		pid_t inside = fork_with_pid(0, join);
		vmmcg::ScopeExit end_inside([&] { end_process(inside); });
		// As if the pass had read them as the VMM's: the host one in O (a vCPU: it would go to S),
		// the container one in S (an overhead thread: it would go to O).
		write_text(cgroup_dir("cpu", O) + "/tasks", std::to_string(host));
		std::vector<vmmcg::Sorting> sortings;
		sortings.push_back({vmmcg::CgroupMount::open("/sys/fs/cgroup/cpu"),
				    "cpu",
				    S,
				    O,
				    {S, O},
				    "tasks",
				    false,
				    true});
		vmmcg::ThreadMover mover(std::move(sortings));
		vmmcg::ThreadInfo as_vcpu{host, "CPU 0/KVM", 0, 0};
		vmmcg::ThreadInfo as_overhead{inside, "IO x", 0, std::nullopt};
		vmmcg::ProcFs proc;
		vmmcg::Moves moves = mover.move(proc, vmmcg::TaskDir(proc, vmm), {as_vcpu, as_overhead},
						Clock::now() + 5s);
		CHECK(moves.moved == 0);
		CHECK(moves.gone.size() == 2);
		CHECK(where(host, "cpu") != S); // not moved into the container
		// The container's process stays the container's.
		CHECK((where(inside, "cpu") == S || where(inside, "cpu") == O));
		end_process(host);
		end_process(inside);
		host = inside = 0;
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}

// 3. One container, one set of cgroups.
TEST_SUITE("hostile")
{
	TEST_CASE(
		"two containers of the same id, different bundles: each its own O and record, each poststop "
		"its own")
	{
		std::string id = "vmmcg-it-" + std::to_string(::getpid()) + "-sameid";
		Sandbox a("sameid-a", id), b("sameid-b", id);
		b.share_record_dir(a);
		REQUIRE(a.instance() != b.instance());
		a.start_test_vmm({"--vcpus", "2"});
		b.start_test_vmm({"--vcpus", "3"});
		for (Sandbox *sb : {&a, &b}) {
			HookRun created = sb->create_runtime();
			REQUIRE_MESSAGE(created.status == 0, created.err);
			HookRun started = sb->poststart();
			REQUIRE_MESSAGE(started.status == 0, started.err);
		}
		REQUIRE(wait_until([&] { return a.settled() && b.settled(); }, 20000));
		check_split(a, 2);
		check_split(b, 3);
		std::string a_record = read_text(a.record_file());

		HookRun stopped = b.poststop();
		CHECK_MESSAGE(stopped.status == 0, stopped.err);
		CHECK(b.overhead_gone());
		CHECK_FALSE(fs::exists(b.record_file()));
		check_split(a, 2);
		CHECK(read_text(a.record_file()) == a_record);

		CHECK(a.poststop().status == 0);
		CHECK(a.overhead_gone());
		CHECK(record_dir_empty(a));
	}

	TEST_CASE(
		"a second createRuntime of a running container (same id, same bundle) is refused and changes "
		"nothing")
	{
		Sandbox sb("twice");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		std::string intent = read_text(sb.record_file());
		// Before placement: the same container again.
		HookRun again = sb.create_runtime();
		CHECK(again.status == 1);
		CHECK_MESSAGE(again.err.find("refusing a second one") != std::string::npos, again.err);
		CHECK(read_text(sb.record_file()) == intent);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		std::string record = read_text(sb.record_file());
		// After placement: another process in S under the same id and bundle (another runtime root),
		// and the first one's state again (its VMM is in O now: not where config.json says).
		std::vector<std::string> join;
		for (const auto &c : all_controllers())
			join.push_back(cgroup_dir(c, sb.sandbox_path()) + "/cgroup.procs");
		pid_t other = fork_with_pid(0, join);
		vmmcg::ScopeExit end_other([&] { end_process(other); });
		auto state = nlohmann::json::parse(sb.state());
		state["pid"] = other;
		HookRun second = sb.run("create-runtime", state.dump());
		CHECK(second.status == 1);
		CHECK_MESSAGE(second.err.find("refusing a second one") != std::string::npos, second.err);
		HookRun same = sb.create_runtime();
		CHECK(same.status != 0);
		check_split(sb, 2);
		CHECK(read_text(sb.record_file()) == record);
		end_process(other);
		other = 0;
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
	}

	TEST_CASE("a stale instance (its container gone, no poststop ran) is cleaned and replaced")
	{
		Sandbox sb("stale");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		pid_t old = sb.vmm();
		sb.kill_vmm(); // and no poststop: the record and O are left
		REQUIRE(fs::exists(sb.record_file()));
		REQUIRE_FALSE(sb.overhead_gone());
		sb.start_test_vmm({"--vcpus", "3"});
		HookRun created = sb.create_runtime();
		REQUIRE_MESSAGE(created.status == 0, created.err);
		CHECK(created.err.find("cleaning a stale record") != std::string::npos);
		auto record = sb.record();
		CHECK(record["container"]["pid"] == sb.vmm());
		CHECK(record["container"]["pid"] != old);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		check_split(sb, 3);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
	}
}

// 4. Every hook ends, within its budget, whatever the VMM.
TEST_SUITE("hostile")
{
	TEST_CASE("budget: 5,000 vCPU-named threads, poststart ends within its budget")
	{
		Sandbox sb("flood");
		sb.configure(R"("vcpu_proof":"names","max_vmm_threads":8192)");
		sb.start_test_vmm({"--no-kvm", "--vcpus", "5000", "--io-threads", "1"});
		REQUIRE(sb.create_runtime().status == 0);
		auto start = Clock::now();
		HookRun started = sb.poststart();
		double took = seconds_since(start);
		CHECK_MESSAGE(started.status == 0, started.err);
		MESSAGE("poststart with 5,000 vCPU threads (budget 200 ms): " << took << " s");
		CHECK(took < 2.0);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("budget: max_vmm_threads refuses a VMM above it, which is not placed")
	{
		Sandbox sb("toomany");
		sb.configure(R"("vcpu_proof":"names","max_vmm_threads":1000)");
		sb.start_test_vmm({"--no-kvm", "--vcpus", "1100", "--io-threads", "1"});
		REQUIRE(sb.create_runtime().status == 0);
		auto start = Clock::now();
		HookRun started = sb.poststart();
		CHECK(seconds_since(start) < 2.0);
		CHECK_MESSAGE(started.err.find("max_vmm_threads") != std::string::npos, started.err);
		std::this_thread::sleep_for(300ms);
		check_nothing_moved(sb);
		// Nothing will ever place it: no settler either, after a moment.
		CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 1000));
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("budget: a 1,000-thread impostor that is no VMM, poststart within its budget, its settler "
		  "idle")
	{
		Sandbox sb("threads1000");
		sb.start_test_vmm({"--no-kvm", "--vcpus", "0", "--io-threads", "1000"});
		REQUIRE(sb.create_runtime().status == 0);
		auto start = Clock::now();
		HookRun started = sb.poststart();
		double took = seconds_since(start);
		CHECK_MESSAGE(started.status == 0, started.err);
		CHECK(took < 2.0);
		check_nothing_moved(sb);
		// Its settler (the name is a VMM's) keeps looking: what that costs, over 2 s.
		auto settler = sb.settler();
		if (settler) {
			auto ticks = [&] {
				std::string stat =
					read_text("/proc/" + std::to_string(settler->pid) + "/stat");
				std::istringstream in(stat.substr(stat.rfind(')') + 2));
				std::string field;
				unsigned long long utime = 0, stime = 0;
				for (int i = 3; i <= 15 && in >> field; ++i)
					if (i == 14)
						utime = std::stoull(field);
					else if (i == 15)
						stime = std::stoull(field);
				return utime + stime;
			};
			auto before = ticks();
			auto t0 = Clock::now();
			std::this_thread::sleep_for(2s);
			double cpu = static_cast<double>(ticks() - before) /
				     static_cast<double>(::sysconf(_SC_CLK_TCK)) / seconds_since(t0);
			MESSAGE("settler of a 1,000-thread impostor: " << cpu << " CPUs (SCHED_IDLE)");
			CHECK(cpu < 0.5);
			check_nothing_moved(sb);
		}
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE(
		"budget: a QMP peer that is the VMM itself and never answers holds poststart no longer than "
		"the budget")
	{
		Sandbox sb("qmpsilent");
		std::string socket = "/tmp/" + sb.id() + ".qmp";
		vmmcg::ScopeExit unlink_socket([&] { ::unlink(socket.c_str()); });
		sb.configure(R"("allowed_annotations":["qmp-socket"],"qmp_timeout_ms":10000)");
		sb.annotate(R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.qmp-socket":")" +
			    socket + "\"}");
		sb.start_test_vmm({"--vcpus", "2", "--qmp-silent", socket});
		REQUIRE(wait_until([&] { return fs::exists(socket); }));
		REQUIRE(sb.create_runtime().status == 0);
		auto start = Clock::now();
		HookRun started = sb.poststart();
		double took = seconds_since(start);
		CHECK_MESSAGE(started.status == 0, started.err);
		MESSAGE("poststart with a silent QMP peer (qmp_timeout_ms 10000, budget 200 ms): " << took
												   << " s");
		CHECK(took < 2.0);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a QMP socket served by another process than the VMM is not believed")
	{
		Sandbox sb("qmppeer");
		std::string socket = "/tmp/" + sb.id() + ".qmp";
		sb.configure(R"("allowed_annotations":["qmp-socket"],"log_level":"debug")");
		sb.annotate(R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.qmp-socket":")" +
			    socket + "\"}");
		sb.start_test_vmm({"--vcpus", "2", "--io-threads", "2"});
		// The forged answer names the I/O threads as the vCPUs: believed, they would stay under the
		// container's limit and the real vCPUs would go to O.
		std::vector<pid_t> io;
		for (const auto &t : sb.threads())
			if (t.name.rfind("IO iothread", 0) == 0)
				io.push_back(t.tid);
		REQUIRE(io.size() == 2);
		ForgedQmp peer(socket, io);
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		CHECK(started.err.find("not by the VMM") != std::string::npos);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		CHECK(peer.connections() > 0);
		CHECK(sb.record()["vcpu_source"] == "thread-names");
		check_split(sb, 2);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}

// 5. Settlers cost little and are always known.
TEST_SUITE("hostile")
{
	TEST_CASE("settlers: with max_settlers 2, three launchers that never become VMMs leave at most 2")
	{
		std::vector<std::unique_ptr<Sandbox>> sandboxes;
		std::size_t refused = 0;
		for (int i = 0; i < 3; ++i) {
			auto sb = std::make_unique<Sandbox>("slots" + std::to_string(i));
			sb->configure(R"("max_settlers":2)");
			sb->start(late_vmm_launcher());
			REQUIRE(sb->create_runtime().status == 0);
			HookRun started = sb->poststart();
			CHECK_MESSAGE(started.status == 0, started.err);
			refused +=
				started.err.find("no settler could be started (all 2 settler slots of this "
						 "node are taken)") != std::string::npos;
			sandboxes.push_back(std::move(sb));
		}
		std::size_t settlers = 0;
		for (const auto &sb : sandboxes)
			settlers += sb->hook_processes().size();
		CHECK(settlers <= 2);
		CHECK(refused >= 1);
		for (const auto &sb : sandboxes) {
			CHECK(sb->poststop().status == 0);
			CHECK(sb->hook_processes().empty());
			check_nothing_moved(*sb);
		}
	}

	TEST_CASE("settlers: a container that is no VMM gets none")
	{
		Sandbox sb("nosettler");
		sb.start({"/bin/sleep", "60"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		CHECK_FALSE(sb.settler());
		CHECK(sb.hook_processes().empty());
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE("settlers: a sidecar shell whose command line names no VMM gets none")
	{
		// sh is a launcher, but `sh -c "exec sleep 60"` names no VMM: nothing would come for a
		// settler to wait for (a pod's sidecar of the handler).
		Sandbox sb("sidecar");
		sb.start({"/bin/sh", "-c", "exec sleep 60"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK_MESSAGE(started.status == 0, started.err);
		CHECK_FALSE(sb.settler());
		CHECK_FALSE(sb.watcher());
		CHECK(sb.hook_processes().empty());
		CHECK(sb.poststop().status == 0);
		CHECK(record_dir_empty(sb));
	}

	TEST_CASE("settlers: the record write of the hand-over fails: the settler ends at once")
	{
		Sandbox sb("handover-fail");
		sb.start(late_vmm_launcher());
		REQUIRE(sb.create_runtime().status == 0);
		// Immutable: the record can be read, no file can be made in the directory, not even by root.
		std::string chattr = "chattr +i " + sb.record_dir();
		REQUIRE(std::system(chattr.c_str()) == 0);
		vmmcg::ScopeExit mutable_again(
			[&] { (void)!std::system(("chattr -i " + sb.record_dir()).c_str()); });
		HookRun started = sb.poststart();
		CHECK(started.status == 1);
		CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 1000));
		CHECK(sb.record()["settler"].is_null());
		REQUIRE(std::system(("chattr -i " + sb.record_dir()).c_str()) == 0);
		CHECK(sb.poststop().status == 0);
		CHECK(record_dir_empty(sb));
	}

	TEST_CASE("settlers: poststart SIGKILLed right after it forked the settler: none is left that the "
		  "record does not name")
	{
		for (int i = 0; i < 5; ++i) {
			Sandbox sb("handover-kill" + std::to_string(i));
			sb.start(late_vmm_launcher());
			REQUIRE(sb.create_runtime().status == 0);
			RunningHook hook = sb.spawn("poststart", sb.state());
			pid_t hook_pid = hook.pid;
			bool forked = spin_until(
				[&] {
					auto pids = sb.hook_processes();
					return std::any_of(pids.begin(), pids.end(),
							   [&](pid_t p) { return p != hook_pid; });
				},
				5s);
			::kill(hook_pid, SIGKILL);
			sb.finish(hook);
			CHECK(forked);
			// Within a moment every settler left is the one the record names.
			auto known = [&] {
				auto named = sb.settler();
				for (pid_t p : sb.hook_processes())
					if (!named || named->pid != p)
						return false;
				return true;
			};
			CHECK(wait_until(known, 1000));
			CHECK(sb.poststop().status == 0);
			CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 1000));
		}
	}
}

// 6. Nothing half made is left for ever.
TEST_SUITE("hostile")
{
	TEST_CASE("leaks: createRuntime SIGKILLed at random points leaves nothing, or what poststop removes")
	{
		Sandbox sb("killed");
		sb.start_test_vmm({"--vcpus", "2"});
		std::mt19937 random(12);
		std::size_t left = 0;
		for (int i = 0; i < 20; ++i) {
			auto delay = std::chrono::microseconds(
				std::uniform_int_distribution<int>(0, 8000)(random));
			CAPTURE(i);
			CAPTURE(delay.count());
			RunningHook hook = sb.spawn("create-runtime", sb.state());
			std::this_thread::sleep_for(delay);
			::kill(hook.pid, SIGKILL);
			sb.finish(hook);
			if (fs::exists(sb.record_file())) {
				++left;
				std::string phase = sb.record()["phase"];
				CHECK((phase == "creating" || phase == "created"));
				HookRun stopped = sb.poststop();
				CHECK_MESSAGE(stopped.status == 0, stopped.err);
			}
			CHECK(sb.overhead_gone());
			CHECK_MESSAGE(record_dir_empty(sb), "left in the record directory after a kill at "
								    << delay.count() << " us");
		}
		MESSAGE(left << " of 20 killed createRuntimes left a record for poststop");
	}
}

// 7. Logs that cannot be forged.
TEST_SUITE("hostile")
{
	TEST_CASE("logs cannot be forged: a 200 KB value and a newline in the state's annotations")
	{
		Sandbox sb("forge-state");
		sb.start_test_vmm({"--vcpus", "1"});
		auto state = nlohmann::json::parse(sb.state());
		state["annotations"] = {
			{"io.vmm-cgroup-hooks.enable", "true"},
			{"io.vmm-cgroup-hooks.mode",
			 "x\nvmm-cgroup-hooks poststop id=some-other-container: info: cleaned up"},
			{"io.vmm-cgroup-hooks.qmp-socket", std::string(200000, 'a')},
			{"io.vmm-cgroup-hooks." + std::string(200000, 'k'), "v"},
		};
		// config.json's annotations stay plain: only the state carries the hostile ones.
		for (const char *stage : {"create-runtime", "poststart", "poststop"}) {
			CAPTURE(stage);
			HookRun run = sb.run(stage, state.dump());
			CHECK_MESSAGE(run.status == 0, run.err.substr(0, 2000));
			std::string name = std::string(stage) == "create-runtime" ? "createRuntime" : stage;
			check_lines(run.err, "vmm-cgroup-hooks " + name + " id=" + sb.id() + ": ");
			CHECK(run.err.find("\nvmm-cgroup-hooks poststop id=some-other") == std::string::npos);
			CHECK(run.err.size() < 20000);
		}
		CHECK(sb.overhead_gone());
	}
}

// 8. The state's pid is not trusted over the runtime's cgroupsPath; a cgroup the hooks did not create is
// never changed.
TEST_SUITE("hostile")
{
	TEST_CASE("an absolute cgroupsPath that disagrees with /proc/<pid>/cgroup: exit 2, nothing created")
	{
		Sandbox sb("disagree");
		sb.start_test_vmm({"--vcpus", "1"});
		std::string parent = sb.sandbox_path().substr(0, sb.sandbox_path().rfind('/'));
		sb.set_cgroups_path(parent + "/someone-else");
		HookRun created = sb.create_runtime();
		CHECK(created.status == 2);
		CHECK_MESSAGE(created.err.find("linux.cgroupsPath") != std::string::npos, created.err);
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
		CHECK(sb.poststart().status == 1); // enabled, and no record: nothing to place
		check_nothing_moved(sb);
	}

	TEST_CASE("an existing overhead root with an empty cpuset is refused and left unchanged")
	{
		Sandbox sb("emptyroot");
		sb.use_overhead_root();
		std::string root = sb.overhead_root();
		for (const auto &c : Sandbox::cpu_controllers())
			REQUIRE(::mkdir(cgroup_dir(c, root).c_str(), 0755) == 0);
		REQUIRE(read_text(cgroup_dir("cpuset", root) + "/cpuset.cpus").empty());
		std::string quota = read_text(cgroup_dir("cpu", root) + "/cpu.cfs_quota_us");
		sb.start_test_vmm({"--vcpus", "1"});
		HookRun created = sb.create_runtime();
		CHECK(created.status == 1);
		CHECK_MESSAGE(created.err.find("is empty") != std::string::npos, created.err);
		CHECK(read_text(cgroup_dir("cpuset", root) + "/cpuset.cpus").empty());
		CHECK(read_text(cgroup_dir("cpuset", root) + "/cpuset.mems").empty());
		CHECK(read_text(cgroup_dir("cpu", root) + "/cpu.cfs_quota_us") == quota);
		for (const auto &c : Sandbox::cpu_controllers()) {
			std::size_t children = 0;
			for (const auto &entry : fs::directory_iterator(cgroup_dir(c, root)))
				children += entry.is_directory();
			CHECK(children == 0);
		}
		CHECK(sb.overhead_gone());
		CHECK(record_dir_empty(sb));
	}
}

// 2b. The same race on a process: a pass returns processes it finds in O (children the VMM forked after
// it was moved) to S, by pid, through cgroup.procs.
TEST_SUITE("hostile")
{
	TEST_CASE("a reused pid: a host process that takes a stray's pid while a pass returns strays to S is "
		  "not moved into the container")
	{
		std::optional<std::string>
			host_cpuset; // where the host process ended, once the window was hit
		std::string self_cpuset = where(::getpid(), "cpuset");
		for (int attempt = 0; attempt < 6 && !host_cpuset; ++attempt) {
			Sandbox sb("strays" + std::to_string(attempt));
			sb.configure(R"("watch_vmm":false)"); // the strays stay in O for this test's pass
			// 1,000 children forked after placement, into O: one write each per hierarchy.
			pid_t vmm = sb.start_test_vmm(
				{"--vcpus", "1", "--fork-after-ms", "1500", "--forks", "1000"});
			REQUIRE(sb.create_runtime().status == 0);
			REQUIRE(sb.poststart().status == 0);
			REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
			const std::string S = sb.sandbox_path(), O = sb.overhead_path();
			std::string procs = cgroup_dir("cpuset", O) + "/cgroup.procs";
			std::vector<pid_t> strays;
			REQUIRE(wait_until([&] {
				std::istringstream in(read_text(procs));
				strays.clear();
				for (pid_t p; in >> p;)
					if (p != vmm)
						strays.push_back(p);
				return strays.size() == 1000;
			}));
			std::sort(strays.begin(), strays.end()); // as the kernel lists them
			pid_t first = strays.front(), before_last = strays[strays.size() - 2],
			      target = strays.back();

			auto record = vmmcg::read_record(sb.record_dir(), sb.instance(), sb.id());
			REQUIRE(record);
			std::unique_ptr<vmmcg::Backend> backend = vmmcg::make_backend(record->cgroups);
			vmmcg::ProcFs proc;
			auto ref = proc.process(vmm);
			REQUIRE(ref);
			std::error_code ec;
			vmmcg::TaskDir tasks(proc, vmm);
			auto listed = vmmcg::list_threads(tasks, vmmcg::Config().vcpu_thread_patterns, ec);
			std::thread pass(
				[&] { backend->place(proc, *ref, tasks, listed, Clock::now() + 10s); });
			pid_t taker = 0;
			vmmcg::ScopeExit cleanup([&] {
				if (pass.joinable())
					pass.join();
				end_process(taker);
			});
			// The cpuset list is read once the cpu hierarchy is done: the first stray back in S.
			bool started = spin_until([&] { return where(first, "cpuset") == S; }, 10s);
			if (!started)
				continue;
			::kill(target,
			       SIGKILL); // a process of the stand-in's, which the kernel reaps at once
			if (!spin_until([&] { return !fs::exists("/proc/" + std::to_string(target)); }, 2s))
				continue;
			taker = fork_with_pid(target, {});
			bool hit = taker == target && where(before_last, "cpuset") == O;
			pass.join();
			if (hit)
				host_cpuset = where(taker, "cpuset");
			end_process(taker);
			taker = 0;
			CHECK(sb.poststop().status == 0);
		}
		REQUIRE_MESSAGE(host_cpuset,
				"the race window was not hit in 6 tries (ns_last_pid, a busy host?)");
		CHECK(*host_cpuset == self_cpuset);
	}
}

// 6b. The moment between a record's temp file and its rename.

TEST_SUITE("hostile")
{
	TEST_CASE("leaks: createRuntime SIGKILLed the moment its record's temp file appears")
	{
		Sandbox sb("killtemp");
		sb.start_test_vmm({"--vcpus", "1"});
		fs::create_directories(sb.record_dir());
		std::size_t temp_only = 0, tries = 0;
		for (; tries < 30 && temp_only == 0; ++tries) {
			int watch = ::inotify_init1(IN_CLOEXEC);
			REQUIRE(watch >= 0);
			REQUIRE(::inotify_add_watch(watch, sb.record_dir().c_str(), IN_CREATE) >= 0);
			RunningHook hook = sb.spawn("create-runtime", sb.state());
			alignas(struct inotify_event) char buf[4096];
			(void)!::read(watch, buf, sizeof(buf)); // the first file made: the intent's temp file
			::kill(hook.pid, SIGKILL);
			::close(watch);
			sb.finish(hook);
			bool record = fs::exists(sb.record_file());
			if (!record && !record_dir_empty(sb))
				++temp_only;
			// Whatever it left, the following poststop removes it all.
			HookRun stopped = sb.poststop();
			CHECK_MESSAGE(stopped.status == 0, stopped.err);
			CHECK(sb.overhead_gone());
			CHECK_MESSAGE(record_dir_empty(sb), "try " << tries << ": a record: " << record);
			for (const auto &entry : fs::directory_iterator(sb.record_dir()))
				fs::remove(entry.path()); // the next try starts clean
		}
		MESSAGE(temp_only << " of " << tries << " kills left a temp file and no record");
	}
}

// 8b. A node-wide overhead root made by the first containers of the node, at once.
TEST_SUITE("hostile")
{
	TEST_CASE("overhead root: two createRuntimes that find it missing at once both succeed")
	{
		std::string root = "/vmmcg-it-" + std::to_string(::getpid()) + "-sharedroot";
		auto remove_root = [&] {
			for (const auto &c : Sandbox::cpu_controllers())
				::rmdir(cgroup_dir(c, root).c_str());
		};
		vmmcg::ScopeExit cleanup(remove_root);
		Sandbox a("rootrace-a"), b("rootrace-b");
		for (Sandbox *sb : {&a, &b}) {
			sb->configure(R"("overhead_parent":"root","overhead_root":")" + root + "\"");
			sb->start_test_vmm({"--vcpus", "1"});
		}
		std::size_t failed = 0;
		for (int i = 0; i < 20; ++i) {
			CAPTURE(i);
			remove_root();
			REQUIRE_FALSE(fs::exists(cgroup_dir("cpuset", root)));
			RunningHook first = a.spawn("create-runtime", a.state());
			RunningHook second = b.spawn("create-runtime", b.state());
			HookRun ra = a.finish(first), rb = b.finish(second);
			failed += (ra.status != 0) + (rb.status != 0);
			CHECK_MESSAGE(ra.status == 0, ra.err);
			CHECK_MESSAGE(rb.status == 0, rb.err);
			CHECK(a.poststop().status == 0);
			CHECK(b.poststop().status == 0);
			for (const auto &c : Sandbox::cpu_controllers())
				CHECK_FALSE(fs::exists(cgroup_dir(c, root + "/" + a.instance())));
		}
		MESSAGE(failed << " of 40 concurrent createRuntimes failed on a root another was making");
	}

	TEST_CASE("overhead root: one that another hook is seeding is waited for, not refused")
	{
		std::string root = "/vmmcg-it-" + std::to_string(::getpid()) + "-seeding";
		vmmcg::ScopeExit cleanup([&] {
			for (const auto &c : Sandbox::cpu_controllers())
				::rmdir(cgroup_dir(c, root).c_str());
		});
		Sandbox sb("seeding");
		sb.configure(R"("overhead_parent":"root","overhead_root":")" + root + "\"");
		sb.start_test_vmm({"--vcpus", "1"});
		// As the first createRuntime of a node leaves it for a moment: made, its cpuset not seeded
		// yet.
		for (const auto &c : Sandbox::cpu_controllers())
			REQUIRE(::mkdir(cgroup_dir(c, root).c_str(), 0755) == 0);
		RunningHook hook = sb.spawn("create-runtime", sb.state());
		std::this_thread::sleep_for(20ms);
		for (const char *file : {"cpuset.cpus", "cpuset.mems"})
			write_text(cgroup_dir("cpuset", root) + "/" + file,
				   read_text(cgroup_dir("cpuset", "/") + file));
		HookRun created = sb.finish(hook);
		CHECK_MESSAGE(created.status == 0, created.err);
		CHECK(sb.poststop().status == 0);
		for (const auto &c : Sandbox::cpu_controllers())
			CHECK_FALSE(fs::exists(cgroup_dir(c, root + "/" + sb.instance())));
	}
}
