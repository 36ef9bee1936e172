#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "host.h"
#include "layout.h"
#include "procfs.h"

namespace vmmcg::test {

namespace fs = std::filesystem;

std::string file_text(const std::string &path)
{
	std::ifstream in(path);
	std::stringstream buf;
	buf << in.rdbuf();
	return buf.str();
}

namespace {

const std::string cgroup_root = "/sys/fs/cgroup";

void write_text(const std::string &path, const std::string &text)
{
	std::ofstream out(path);
	out << text;
	out.flush();
	if (!out)
		throw std::runtime_error("writing '" + text + "' to " + path + " failed");
}

std::string trim(std::string text)
{
	while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
		text.pop_back();
	return text;
}

std::vector<std::string> all_controllers()
{
	std::vector<std::string> all = Sandbox::cpu_controllers();
	for (const auto &c : Sandbox::other_controllers())
		all.push_back(c);
	return all;
}

// Moves every task of a cgroup tree to the hierarchy's root, then removes it deepest first.
void remove_tree(const std::string &path)
{
	std::error_code ec;
	if (!fs::exists(path, ec))
		return;
	for (const auto &entry : fs::directory_iterator(path, ec))
		if (entry.is_directory())
			remove_tree(entry.path());
	std::string root = path.substr(0, path.find('/', cgroup_root.size() + 1));
	for (int attempt = 0; attempt < 50; ++attempt) {
		std::istringstream tasks(file_text(path + "/tasks"));
		for (std::string tid; std::getline(tasks, tid);) {
			std::ofstream out(root + "/tasks");
			out << tid;
		}
		if (::rmdir(path.c_str()) == 0 || errno == ENOENT)
			return;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	std::fprintf(stderr, "harness: could not remove %s: %s\n", path.c_str(), std::strerror(errno));
}

// Processes of a cgroup (and its children) in the pids hierarchy, where a container's processes all stay.
std::vector<pid_t> processes_in(const std::string &path)
{
	std::vector<pid_t> pids;
	std::error_code ec;
	if (!fs::exists(path, ec))
		return pids;
	std::istringstream procs(file_text(path + "/cgroup.procs"));
	for (pid_t pid; procs >> pid;)
		pids.push_back(pid);
	for (const auto &entry : fs::directory_iterator(path, ec))
		if (entry.is_directory())
			for (pid_t pid : processes_in(entry.path()))
				pids.push_back(pid);
	return pids;
}

// Children a Sandbox waits for itself (hooks, VMMs). Sandboxes may run on several threads at once (the
// load test), so the reaper below must never take one of those: it reaps only the zombies nobody owns,
// the settlers that were reparented to this subreaper.
std::mutex owned_mutex;
std::set<pid_t> owned;

void disown(pid_t pid)
{
	std::lock_guard lock(owned_mutex);
	owned.erase(pid);
}

void reap_children()
{
	std::error_code ec;
	for (const auto &task : fs::directory_iterator("/proc/self/task", ec)) {
		std::istringstream children(file_text(task.path() / "children"));
		for (pid_t child; children >> child;) {
			{
				std::lock_guard lock(owned_mutex);
				if (owned.count(child))
					continue;
			}
			std::string stat = file_text("/proc/" + std::to_string(child) + "/stat");
			auto paren = stat.rfind(')');
			if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z')
				::waitpid(child, nullptr, WNOHANG);
		}
	}
}

// Trees named vmmcg-it-<pid>... of test runs that were killed before their destructors ran.
void remove_stale_trees()
{
	std::error_code ec;
	for (const auto &c : all_controllers()) {
		for (const auto &entry : fs::directory_iterator(cgroup_root + "/" + c, ec)) {
			std::string name = entry.path().filename();
			if (name.rfind("vmmcg-it-", 0) != 0)
				continue;
			pid_t owner = std::atoi(name.c_str() + 9);
			if (owner > 0 && owner != ::getpid() && ::kill(owner, 0) != 0)
				remove_tree(entry.path());
		}
	}
}

// Settlers reparent to the nearest subreaper: be it, so that they are reaped here and not left as zombies
// under an init that does not reap (as in some sandboxes).
void become_subreaper()
{
	static std::once_flag once;
	std::call_once(once, [] {
		::prctl(PR_SET_CHILD_SUBREAPER, 1);
		remove_stale_trees();
	});
}

} // namespace

const std::vector<std::string> &Sandbox::cpu_controllers()
{
	static const std::vector<std::string> list = {"cpu", "cpuset"};
	return list;
}

const std::vector<std::string> &Sandbox::other_controllers()
{
	static const std::vector<std::string> list = {"cpuacct", "memory",  "pids",
						      "devices", "freezer", "blkio"};
	return list;
}

std::string build_path(const std::string &relative)
{
	const char *dir = std::getenv("VMMCG_BUILD_DIR");
	if (!dir)
		throw std::runtime_error("VMMCG_BUILD_DIR is not set: run the tests through meson test");
	return std::string(dir) + "/" + relative;
}

bool is_vcpu_name(const std::string &name)
{
	return match_vcpu_name({"CPU {n}/KVM", "CPU {n}/TCG", "vcpu{n}", "fc_vcpu {n}"}, name).has_value();
}

std::vector<std::string> late_vmm_launcher()
{
	return {"/bin/sh", "-c", "sleep 60; exec " + build_path("tests/test-vmm")};
}

bool wait_until(const std::function<bool()> &pred, int timeout_ms)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (std::chrono::steady_clock::now() < deadline) {
		if (pred())
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	return pred();
}

Sandbox::Sandbox(const std::string &name, const std::string &id)
{
	if (::geteuid() != 0)
		throw std::runtime_error("the integration tests need root (they use the real cgroupfs)");
	if (detect_host_mode() == HostMode::v2)
		throw std::runtime_error("these integration tests need v1 controllers (a v1 or hybrid host); "
					 "pure v2 is covered by the v2guest suite");
	become_subreaper();
	std::string run = std::to_string(::getpid());
	id_ = id.empty() ? "vmmcg-it-" + run + "-" + name : id;
	prefix_ = "/vmmcg-it-" + run;
	sandbox_ = prefix_ + "/" + name;
	overhead_root_ = "/vmmcg-it-" + run + "-overhead-" + name;
	dir_ = "/tmp/vmmcg-it-" + run + "-" + name;
	record_dir_ = dir_ + "/records";
	fs::create_directories(dir_ + "/bundle");
	for (const auto &c : all_controllers()) {
		std::string base = cgroup_root + "/" + c;
		fs::create_directories(base + sandbox_);
		if (c == "cpuset")
			for (const char *file : {"cpuset.cpus", "cpuset.mems"}) {
				std::string value = trim(file_text(base + "/" + file));
				write_text(base + prefix_ + "/" + file, value);
				write_text(base + sandbox_ + "/" + file, value);
			}
	}
	write_config();
}

Sandbox::~Sandbox()
{
	kill_vmm();
	// Hooks and settlers of this sandbox that no record names (a test of a killed hook): by pid.
	for (pid_t pid : hook_processes())
		::kill(pid, SIGKILL);
	// Everything still in this sandbox's cgroups was started by this test (a launcher's VMM child, say).
	for (const std::string &tree : {sandbox_, overhead_root_, prefix_ + "/vmm-overhead-" + instance()})
		for (pid_t pid : processes_in(cgroup_root + "/pids" + tree))
			::kill(pid, SIGKILL);
	// A settler still running: end it by the pid and start time in the record.
	try {
		if (fs::exists(record_file()))
			if (auto running = settler(); running && ProcFs().alive(*running)) {
				::kill(running->pid, SIGKILL);
				// Dead before the directory goes: a write it was in could otherwise land
				// after.
				wait_until([&] { return !ProcFs().alive(*running); }, 2000);
			}
	} catch (const std::exception &e) {
		std::fprintf(stderr, "harness: reading %s: %s\n", record_file().c_str(), e.what());
	}
	wait_until([&] { return processes_in(cgroup_root + "/pids" + sandbox_).empty(); }, 2000);
	reap_children();
	for (const auto &c : all_controllers()) {
		remove_tree(cgroup_root + "/" + c + sandbox_);
		remove_tree(cgroup_root + "/" + c + overhead_root_);
		remove_tree(cgroup_root + "/" + c + prefix_ + "/vmm-overhead-" + instance());
		::rmdir((cgroup_root + "/" + c + prefix_).c_str()); // once the run's last sandbox is gone
	}
	reap_children();
	std::error_code ec;
	fs::remove_all(dir_, ec);
}

std::string Sandbox::instance() const
{
	return instance_name(id_, dir_ + "/bundle");
}

std::string Sandbox::overhead_path() const
{
	return overhead_in_root_ ? overhead_root_ + "/" + instance()
				 : prefix_ + "/vmm-overhead-" + instance();
}

void Sandbox::use_overhead_root()
{
	overhead_in_root_ = true;
	write_config();
}

void Sandbox::share_record_dir(const Sandbox &other)
{
	record_dir_ = other.record_dir_;
	write_config();
}

void Sandbox::configure(const std::string &members)
{
	config_members_ = members;
	write_config();
}

void Sandbox::annotate(const std::string &json_object)
{
	annotations_ = json_object;
	write_config();
}

void Sandbox::set_cgroups_path(const std::string &path)
{
	cgroups_path_ = path;
	write_config();
}

void Sandbox::set_opt_in(const std::string &opt_in)
{
	opt_in_ = opt_in;
	write_config();
}

void Sandbox::write_config() const
{
	std::string config = R"({"overhead_root":")" + overhead_root_ + R"(","record_dir":")" + record_dir_ +
			     R"(","opt_in":")" + opt_in_ +
			     R"(","log_syslog":false,"vmm_names":["test-vmm","qemu-system-*"],)"
			     R"("settle_timeout_ms":10000)" +
			     (overhead_in_root_ ? R"(,"overhead_parent":"root")" : "");
	if (!config_members_.empty())
		config += "," + config_members_;
	write_text(dir_ + "/config.json", config + "}");
	write_text(dir_ + "/bundle/config.json",
		   R"({"ociVersion":"1.0.2","process":{"args":)" + nlohmann::json(args_).dump() +
			   R"(},"annotations":)" + annotations_ + R"(,"linux":{"cgroupsPath":")" +
			   (cgroups_path_.empty() ? sandbox_ : cgroups_path_) + R"("}})");
}

pid_t Sandbox::start(const std::vector<std::string> &argv)
{
	if (argv.empty())
		throw std::invalid_argument("Sandbox::start: no program");
	args_ = argv;
	write_config(); // config.json names the program, as a runtime's bundle does
	std::vector<std::string> procs;
	for (const auto &c : all_controllers())
		procs.push_back(cgroup_root + "/" + c + sandbox_ + "/cgroup.procs");
	std::string log_file = dir_ + "/vmm.log"; // what the VMM prints, for a failing test to look at
	// The pipe closes on exec: once it does, the child is in S and runs the program.
	int exec_pipe[2];
	if (::pipe2(exec_pipe, O_CLOEXEC) != 0)
		throw std::runtime_error("pipe failed");
	std::vector<char *> args; // built before fork: the child of a threaded process must not allocate
	for (const auto &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	std::unique_lock lock(owned_mutex); // registered before the reaper can see it
	pid_t pid = ::fork();
	if (pid < 0)
		throw std::runtime_error("fork failed");
	if (pid == 0) {
		// In S before exec, as a runtime does it: every thread the program makes starts there.
		for (const auto &file : procs) {
			int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
			if (fd < 0 || ::write(fd, "0", 1) != 1)
				::_exit(126);
			::close(fd);
		}
		int null = ::open("/dev/null", O_RDWR);
		int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
		::dup2(null, 0);
		::dup2(log, 1);
		::dup2(log, 2);
		::execv(args[0], args.data());
		::_exit(127);
	}
	owned.insert(pid);
	lock.unlock();
	::close(exec_pipe[1]);
	char byte;
	while (::read(exec_pipe[0], &byte, 1) < 0 && errno == EINTR) {
	}
	::close(exec_pipe[0]);
	vmm_ = pid;
	return pid;
}

pid_t Sandbox::start_test_vmm(const std::vector<std::string> &extra_args)
{
	std::string ready = dir_ + "/ready";
	std::vector<std::string> argv = {build_path("tests/test-vmm"), "--ready-file", ready};
	argv.insert(argv.end(), extra_args.begin(), extra_args.end());
	pid_t pid = start(argv);
	bool delayed = std::find(extra_args.begin(), extra_args.end(), "--vcpu-delay-ms") != extra_args.end();
	if (!delayed && !wait_until([&] { return fs::exists(ready); }))
		throw std::runtime_error("test-vmm did not get ready");
	return pid;
}

bool Sandbox::remove_sandbox() const
{
	bool gone = true;
	for (const auto &c : all_controllers()) {
		std::string path = cgroup_root + "/" + c + sandbox_;
		if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
			gone = false;
	}
	return gone;
}

void Sandbox::kill_vmm()
{
	if (vmm_ <= 0)
		return;
	::kill(vmm_, SIGKILL);
	::waitpid(vmm_, nullptr, 0);
	disown(vmm_);
	vmm_ = 0;
}

std::string Sandbox::state() const
{
	return R"({"ociVersion":"1.0.2","id":")" + id_ + R"(","status":"created","pid":)" +
	       std::to_string(vmm_) + R"(,"bundle":")" + dir_ + R"(/bundle","annotations":)" + annotations_ +
	       "}";
}

namespace {

// Forks the hook with the state on a pipe; its stderr is returned, stdin is closed after the write when
// close_stdin (else in_write holds it).
RunningHook start_hook(const std::string &exe, const std::string &config, const std::string &state_json,
		       bool close_stdin, int &in_write, bool gate)
{
	const char *args[] = {exe.c_str(), "--config", config.c_str(), gate ? "--gate=runtime" : nullptr,
			      nullptr};
	int in[2], err[2];
	if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
		throw std::runtime_error("pipe failed");
	std::unique_lock lock(owned_mutex); // registered before the reaper can see it
	pid_t pid = ::fork();
	if (pid == 0) {
		::dup2(in[0], 0);
		::dup2(err[1], 2);
		::execv(exe.c_str(), const_cast<char **>(args));
		::_exit(127);
	}
	owned.insert(pid);
	lock.unlock();
	::close(in[0]);
	::close(err[1]);
	// A hook stops reading at its input limit: that is EPIPE here, not a reason to die.
	::signal(SIGPIPE, SIG_IGN);
	(void)!::write(in[1], state_json.data(), state_json.size());
	in_write = in[1];
	if (close_stdin) {
		::close(in[1]);
		in_write = -1;
	}
	return {pid, err[0]};
}

HookRun finish_hook(RunningHook &hook, int in_write)
{
	HookRun result;
	char buf[4096];
	ssize_t n;
	while ((n = ::read(hook.err_fd, buf, sizeof(buf))) > 0)
		result.err.append(buf, static_cast<std::size_t>(n));
	::close(hook.err_fd);
	int status = 0;
	::waitpid(hook.pid, &status, 0);
	disown(hook.pid);
	if (in_write >= 0)
		::close(in_write);
	result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	hook = {};
	return result;
}

} // namespace

HookRun Sandbox::run(const std::string &stage, const std::string &state_json, bool close_stdin) const
{
	int in_write = -1;
	RunningHook hook = start_hook(build_path("hooks/vmm-cgroup-" + stage), config_path(), state_json,
				      close_stdin, in_write, gate_);
	return finish_hook(hook, in_write);
}

RunningHook Sandbox::spawn(const std::string &stage, const std::string &state_json) const
{
	int in_write = -1;
	return start_hook(build_path("hooks/vmm-cgroup-" + stage), config_path(), state_json, true, in_write,
			  gate_);
}

HookRun Sandbox::finish(RunningHook &hook) const
{
	return finish_hook(hook, -1);
}

nlohmann::json Sandbox::record() const
{
	std::ifstream in(record_file());
	if (!in)
		throw std::runtime_error("no record " + record_file());
	return nlohmann::json::parse(in);
}

bool Sandbox::settled() const
{
	if (!fs::exists(record_file()))
		return false;
	auto r = record();
	return r["settler"].is_null() && !r["vcpus"].empty();
}

std::optional<ProcessRef> Sandbox::recorded_process(const char *key) const
{
	auto r = record();
	if (r[key].is_null())
		return std::nullopt;
	return ProcessRef{r[key]["pid"], r[key]["start_time"]};
}

std::vector<ThreadPlacement> Sandbox::threads() const
{
	std::vector<ThreadPlacement> out;
	ProcFs proc;
	std::error_code ec;
	for (pid_t tid : proc.thread_ids(vmm_, ec)) {
		std::error_code read_ec;
		std::string text = proc.read_task(vmm_, tid, "cgroup", read_ec);
		if (read_ec)
			continue;
		out.push_back(
			{tid, trim(proc.read_task(vmm_, tid, "comm", read_ec)), parse_proc_cgroup(text)});
	}
	return out;
}

bool Sandbox::overhead_gone() const
{
	for (const auto &c : all_controllers())
		if (fs::exists(cgroup_root + "/" + c + overhead_path()))
			return false;
	return true;
}

std::vector<pid_t> Sandbox::hook_processes() const
{
	std::vector<pid_t> pids;
	std::string needle = config_path();
	std::error_code ec;
	for (const auto &entry : fs::directory_iterator("/proc", ec)) {
		std::string name = entry.path().filename();
		if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
			continue;
		std::string cmdline = file_text(entry.path() / "cmdline");
		std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
		if (cmdline.find(" --config " + needle) != std::string::npos)
			pids.push_back(std::stoi(name));
	}
	return pids;
}

} // namespace vmmcg::test
