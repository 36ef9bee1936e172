// vmm-cgroupctl on the host's real cgroupfs: status (tree, JSON checked against docs/ctl-status.schema.json
// by python3-jsonschema, Prometheus text checked by `promtool check metrics`) of split and sandbox-only
// containers of the test VMM and of real QEMU, reconcile after a vCPU thread was moved by hand, gc after a
// killed engine and a killed createRuntime with a live container beside them, and the v2 layout on this
// host's cgroup2 mount.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "backend.h"
#include "config.h"
#include "harness.h"
#include "host.h"
#include "layout.h"
#include "paths.h"
#include "placement.h"
#include "procfs.h"
#include "record.h"
#include "scope_exit.h"
#include "text.h"

namespace fs = std::filesystem;
using namespace vmmcg;
using namespace vmmcg::test;
using nlohmann::json;

namespace {

const std::string cgroup_root = "/sys/fs/cgroup";

struct Output {
	int status = -1;
	std::string out;
	std::string err;
};

// Runs argv with `input` on its standard input; collects both outputs (poll: neither pipe can fill up).
Output run_program(const std::vector<std::string> &argv, const std::string &input = {})
{
	int in[2], out[2], err[2];
	REQUIRE((::pipe2(in, O_CLOEXEC) == 0 && ::pipe2(out, O_CLOEXEC) == 0 &&
		 ::pipe2(err, O_CLOEXEC) == 0));
	std::vector<char *> args;
	for (const auto &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	pid_t pid = ::fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		::dup2(in[0], 0);
		::dup2(out[1], 1);
		::dup2(err[1], 2);
		::execvp(args[0], args.data());
		::_exit(127);
	}
	::close(in[0]);
	::close(out[1]);
	::close(err[1]);
	::signal(SIGPIPE, SIG_IGN);
	(void)!::write(in[1], input.data(), input.size());
	::close(in[1]);
	Output result;
	struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	std::string *sinks[2] = {&result.out, &result.err};
	for (int open = 2; open > 0;) {
		::poll(fds, 2, -1);
		for (int i = 0; i < 2; ++i) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
				continue;
			char buf[4096];
			ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
			if (n > 0) {
				sinks[i]->append(buf, static_cast<std::size_t>(n));
				continue;
			}
			::close(fds[i].fd);
			fds[i].fd = -1;
			--open;
		}
	}
	int status = 0;
	::waitpid(pid, &status, 0);
	result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return result;
}

std::string config_of(const Sandbox &sb)
{
	std::string bundle = sb.bundle_dir();
	return bundle.substr(0, bundle.size() - 7) + "/config.json";
}

Output ctl(const std::string &config, std::vector<std::string> args)
{
	std::vector<std::string> argv = {build_path("ctl/vmm-cgroupctl"), "--config", config};
	argv.insert(argv.end(), args.begin(), args.end());
	return run_program(argv);
}

std::string source_path(const std::string &relative)
{
	return std::string(VMMCG_SOURCE_ROOT) + "/" + relative;
}

// The document against docs/ctl-status.schema.json, by python3-jsonschema (Debian's); a missing module
// fails the test.
void check_schema(const std::string &document)
{
	Output checked =
		run_program({"python3", "-c",
			     "import json, sys, jsonschema\n"
			     "schema = json.load(open(sys.argv[1]))\n"
			     "jsonschema.Draft202012Validator(schema).validate(json.load(sys.stdin))\n",
			     source_path("docs/ctl-status.schema.json")},
			    document);
	CHECK_MESSAGE(checked.status == 0, checked.err);
}

void check_promtool(const std::string &text)
{
	Output checked = run_program({"promtool", "check", "metrics"}, text);
	CHECK_MESSAGE(checked.status == 0, "promtool: " << checked.out << checked.err << "\n" << text);
}

json status_json(const std::string &config, const std::string &target)
{
	Output out = ctl(config, {"status", target, "--json"});
	REQUIRE_MESSAGE(out.status == 0, out.err);
	check_schema(out.out);
	json doc = json::parse(out.out);
	REQUIRE(doc["containers"].size() == 1);
	return doc["containers"][0];
}

std::string where_now(pid_t pid, pid_t tid, const std::string &key)
{
	std::error_code ec;
	return parse_proc_cgroup(ProcFs().read_task(pid, tid, "cgroup", ec)).at(key);
}

// Each thread the status lists is the VMM's, on the side its name says, and where /proc says it is.
void check_threads(const json &container, pid_t vmm, const std::string &key)
{
	std::error_code ec;
	CHECK(container["threads"].size() == ProcFs().thread_ids(vmm, ec).size());
	for (const auto &t : container["threads"]) {
		INFO("thread " << t.dump());
		CHECK(t["side"] == (is_vcpu_name(t["name"]) ? "vcpu" : "overhead"));
		CHECK(t["placed"] == true);
		CHECK(t["cgroups"][key.empty() ? "cgroup2" : key] == where_now(vmm, t["tid"], key));
	}
}

void write_text(const std::string &path, const std::string &text)
{
	std::ofstream out(path);
	out << text;
	out.flush();
	REQUIRE_MESSAGE(out.good(), "writing " << text << " to " << path);
}

std::string read_text(const std::string &path)
{
	std::ifstream in(path);
	std::stringstream buf;
	buf << in.rdbuf();
	return trimmed(buf.str());
}

pid_t first_vcpu(const Sandbox &sb)
{
	for (const auto &t : sb.threads())
		if (is_vcpu_name(t.name))
			return t.tid;
	FAIL("no vCPU thread");
	return 0;
}

// In the CPU hierarchies vCPU threads are in S, the others in O.
void check_split(const Sandbox &sb)
{
	for (const auto &t : sb.threads())
		for (const auto &c : Sandbox::cpu_controllers()) {
			INFO("thread " << t.tid << " '" << t.name << "' in " << c);
			CHECK(t.where.at(c) ==
			      (is_vcpu_name(t.name) ? sb.sandbox_path() : sb.overhead_path()));
		}
}

// A directory removed at the end, also when the test fails.
struct TempDir {
	std::string path;
	explicit TempDir(const std::string &name)
		: path("/tmp/vmmcg-it-" + std::to_string(::getpid()) + "-" + name)
	{
		fs::create_directories(path);
	}
	~TempDir()
	{
		std::error_code ec;
		fs::remove_all(path, ec);
	}
};

// An empty cgroup made by the test in the cpu hierarchy, removed at the end if it is still there (once the
// processes a failed test left in it are gone).
struct MadeCgroup {
	std::string dir;
	explicit MadeCgroup(std::string d) : dir(std::move(d)) { fs::create_directory(dir); }
	~MadeCgroup()
	{
		wait_until([&] { return ::rmdir(dir.c_str()) == 0 || errno == ENOENT; }, 2000);
	}
};

} // namespace

TEST_SUITE("integration-ctl")
{
	TEST_CASE("ctl status of a split container: the tree, JSON against its schema, Prometheus through "
		  "promtool")
	{
		Sandbox sb("ctl-split");
		// cpuacct moved with the overhead: the CPU split comes from cpuacct.usage of S and O. The
		// test VMM's vCPU threads spin with --spin, its I/O threads never do.
		sb.configure(R"("overhead_controllers":["cpu","cpuacct","cpuset"])");
		sb.start_test_vmm({"--vcpus", "1", "--io-threads", "1", "--spin"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		check_split(sb);
		std::this_thread::sleep_for(std::chrono::milliseconds(400)); // the two threads spin meanwhile
		::kill(sb.vmm(), SIGSTOP); // and stop: a stopped VMM is still alive, and burns no more CPU

		json c = status_json(config_of(sb), sb.id());
		CHECK(c["name"] == sb.instance());
		CHECK(c["mode"] == "split");
		CHECK(c["layout"] == "v1");
		CHECK(c["phase"] == "created");
		CHECK(c["placement_ok"] == true);
		CHECK(c["problems"].empty());
		CHECK(c["vmm"]["pid"] == sb.vmm());
		CHECK(c["vmm"]["recorded"] == true);
		// Placed within poststart's budget: no settler, and the watcher (watch_vmm, the default).
		CHECK(c["settler"].is_null());
		REQUIRE(c["watcher"].is_object());
		CHECK(c["watcher"]["alive"] == true);
		CHECK(c["watcher"]["pid"] == sb.record()["watcher"]["pid"]);
		CHECK(c["hierarchies"].size() == 3);
		for (const auto &h : c["hierarchies"]) {
			CHECK(h["sandbox"]["path"] == sb.sandbox_path());
			CHECK(h["overhead"]["path"] == sb.overhead_path());
			CHECK(h["overhead"]["exists"] == true);
		}
		check_threads(c, sb.vmm(), "cpu");
		CHECK(c["cpu"]["source"] == "cpuacct");
		// The vCPU thread spun (at least 100 ms of the 400, on a shared machine), the overhead idled:
		// the time is on the vCPU side.
		CHECK(c["cpu"]["vcpu"]["usage_ns"].get<std::uint64_t>() > 100'000'000);
		CHECK(c["cpu"]["overhead"]["usage_ns"].get<std::uint64_t>() < 50'000'000);
		CHECK(c["cpu"]["vcpu"]["nr_throttled"] == 0); // no CPU limit on S

		Output text = ctl(config_of(sb), {"status", sb.id()});
		REQUIRE(text.status == 0);
		MESSAGE("status:\n" << text.out);
		CHECK(text.out.find(sb.id() + "  split on a hybrid host, created  placement ok") == 0);
		CHECK(text.out.find("\033[") == std::string::npos); // not a terminal: no colour
		std::string vcpu_row = std::to_string(first_vcpu(sb)) + "  CPU 0/KVM";
		CHECK(text.out.find(vcpu_row) != std::string::npos);
		CHECK(text.out.find("vcpu      S  ok") != std::string::npos);
		CHECK(text.out.find("overhead  O  ok") != std::string::npos);
		CHECK(text.out.find("├─ watcher    pid " + to_string(c["watcher"]["pid"]) + ", watching\n") !=
		      std::string::npos);

		Output prom = ctl(config_of(sb), {"status", "--prometheus"});
		REQUIRE(prom.status == 0);
		check_promtool(prom.out);
		std::string labels = "{container=\"" + sb.id() + "\",instance_name=\"" + sb.instance() + "\"";
		CHECK(prom.out.find("vmm_cgroup_placement_ok" + labels + "} 1\n") != std::string::npos);
		CHECK(prom.out.find("vmm_cgroup_threads" + labels + ",side=\"vcpu\",placed=\"true\"} 1\n") !=
		      std::string::npos);
		CHECK(prom.out.find("vmm_cgroup_threads" + labels +
				    ",side=\"overhead\",placed=\"true\"} 2\n") != std::string::npos);

		CHECK(ctl(config_of(sb), {"status", "no-such-container"}).status == 1);
		REQUIRE(sb.poststop().status == 0);
	}

	TEST_CASE("ctl status of a sandbox-only container: every thread in S, nothing created")
	{
		Sandbox sb("ctl-sbonly");
		sb.configure(R"("mode":"sandbox-only")");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		json c = status_json(config_of(sb), sb.instance());
		CHECK(c["mode"] == "sandbox-only");
		CHECK(c["layout"] == "none");
		CHECK(c["placement_ok"] == true);
		// poststart places nothing in this mode: the VMM is found from the container.
		CHECK(c["vmm"]["recorded"] == false);
		REQUIRE(c["hierarchies"].size() == 1);
		CHECK(c["hierarchies"][0]["key"] == "cpu");
		CHECK(c["hierarchies"][0]["sandbox"]["path"] == sb.sandbox_path());
		check_threads(c, sb.vmm(), "cpu");
		for (const auto &t : c["threads"])
			CHECK(t["now"] == "sandbox");
		CHECK(c["cpu"]["source"] == "threads");
		CHECK(c["cpu"]["overhead"]["throttled_ns"].is_null()); // S holds both sides: under vcpu
		CHECK(!c["cpu"]["vcpu"]["nr_throttled"].is_null());
		Output prom = ctl(config_of(sb), {"status", "--prometheus"});
		check_promtool(prom.out);
		Output text = ctl(config_of(sb), {"status"});
		MESSAGE("status:\n" << text.out);
		CHECK(text.out.find("sandbox-only on a hybrid host, created  placement ok") !=
		      std::string::npos);
		REQUIRE(sb.poststop().status == 0);
	}

	TEST_CASE("ctl reconcile: a vCPU thread moved to O by hand comes back, and the report names it")
	{
		Sandbox sb("ctl-reconcile");
		// No watcher: it would put the thread back itself (within a second).
		sb.configure(R"("watch_vmm":false)");
		sb.start_test_vmm({"--vcpus", "3", "--io-threads", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		check_split(sb);
		CHECK(sb.record()["watcher"].is_null());
		pid_t vcpu = first_vcpu(sb);
		for (const auto &c : Sandbox::cpu_controllers())
			write_text(cgroup_root + "/" + c + sb.overhead_path() + "/tasks",
				   std::to_string(vcpu));
		CHECK(where_now(sb.vmm(), vcpu, "cpu") == sb.overhead_path());

		json before = status_json(config_of(sb), sb.id());
		CHECK(before["placement_ok"] == false);
		for (const auto &t : before["threads"])
			if (t["tid"] == vcpu) {
				CHECK(t["placed"] == false);
				CHECK(t["now"] == "overhead");
			}
		Output text = ctl(config_of(sb), {"status", sb.id()});
		CHECK(text.out.find("vcpu      O  MISPLACED") != std::string::npos);
		CHECK(text.out.find("placement NOT ok") != std::string::npos);

		Output reconciled = ctl(config_of(sb), {"reconcile", sb.id()});
		MESSAGE("reconcile:\n" << reconciled.out << reconciled.err);
		CHECK(reconciled.status == 0);
		CHECK(reconciled.out.find(sb.id() + ": placed: VMM pid " + std::to_string(sb.vmm()) +
					  ", 3 vCPU threads (thread-names); 1 threads moved\n") == 0);
		CHECK(reconciled.out.find("  " + std::to_string(vcpu) + "  CPU 0/KVM  O -> S\n") !=
		      std::string::npos);
		check_split(sb);
		CHECK(status_json(config_of(sb), sb.id())["placement_ok"] == true);
		json record = sb.record();
		CHECK(record["vcpus"].size() == 3);
		CHECK(record["vmm"]["pid"] == sb.vmm());

		Output again = ctl(config_of(sb), {"reconcile", "--all"});
		CHECK(again.status == 0);
		CHECK(again.out.find("; 0 threads moved\n") != std::string::npos);
		REQUIRE(sb.poststop().status == 0);
		Output gone = ctl(config_of(sb), {"reconcile", sb.id()});
		CHECK(gone.status == 1); // no record any more
	}

	TEST_CASE("ctl gc: a killed engine and a killed createRuntime are collected, a live container beside "
		  "them is untouched")
	{
		Sandbox live("ctl-gc-live"), engine("ctl-gc-engine"), half("ctl-gc-half");
		for (Sandbox *sb : {&live, &engine, &half}) {
			if (sb != &live)
				sb->share_record_dir(live);
			sb->start_test_vmm({"--vcpus", "2"});
			REQUIRE(sb->create_runtime().status == 0);
		}
		REQUIRE(live.poststart().status == 0);
		REQUIRE(engine.poststart().status == 0);
		check_split(live);
		// The engine was killed: its container's process is gone, and poststop never ran. Its watcher
		// outlives the VMM while S is there (poststop may yet come): gc stops it.
		auto recorded_watcher = engine.watcher();
		REQUIRE(recorded_watcher);
		ProcessRef engine_watcher = *recorded_watcher;
		engine.kill_vmm();
		// createRuntime killed midway: the record still says creating.
		std::string half_record = half.record_file();
		json doc = json::parse(read_text(half_record));
		doc["phase"] = "creating";
		write_text(half_record, doc.dump());
		half.kill_vmm();
		// An overhead cgroup beside S that no record names and that holds no task.
		std::string beside = parent_path(live.sandbox_path());
		MadeCgroup orphan(cgroup_root + "/cpu" + beside +
				  "/vmm-overhead-ctl-orphan-0123456789abcdef");
		std::string live_record = read_text(live.record_file());
		std::string config = config_of(live);
		// The start of three containers' ids: reconcile refuses it rather than act on all three.
		std::string prefix = live.id().substr(0, live.id().size() - std::string("live").size());
		Output ambiguous = ctl(config, {"reconcile", prefix});
		CHECK(ambiguous.status == 1);
		CHECK(ambiguous.out.empty());
		CHECK(ambiguous.err.find("is the start of the ids of 3 containers") != std::string::npos);

		Output dry = ctl(config, {"gc", "--dry-run"});
		MESSAGE("gc --dry-run:\n" << dry.out << dry.err);
		CHECK(dry.status == 0);
		CHECK(dry.out.find("3 records, 2 to remove, 1 kept (dry run") != std::string::npos);
		CHECK(dry.out.find("kept     " + live.id() + " (") != std::string::npos);
		CHECK(dry.out.find("remove   " + engine.id() + " (") != std::string::npos);
		CHECK(dry.out.find("remove   " + half.id() + " (") != std::string::npos);
		CHECK(dry.out.find("vmm-overhead-ctl-orphan-0123456789abcdef  empty") != std::string::npos);
		CHECK(!engine.overhead_gone());
		CHECK(!half.overhead_gone());
		CHECK(fs::exists(half_record));

		Output collected = ctl(config, {"gc"});
		MESSAGE("gc:\n" << collected.out << collected.err);
		CHECK(collected.status == 0);
		CHECK(collected.out.find("removed  " + engine.id()) != std::string::npos);
		CHECK(wait_until([&] { return !ProcFs().alive(engine_watcher); }, 2000));
		CHECK(collected.out.find("removed  " + half.id()) != std::string::npos);
		CHECK(engine.overhead_gone());
		CHECK(half.overhead_gone());
		CHECK(!fs::exists(engine.record_file()));
		CHECK(!fs::exists(half_record));
		CHECK(fs::exists(orphan.dir)); // reported, not removed without --force-orphans
		// The live container: its O, its record and its placement as they were.
		CHECK(!live.overhead_gone());
		CHECK(read_text(live.record_file()) == live_record);
		check_split(live);

		Output forced = ctl(config, {"gc", "--force-orphans"});
		CHECK(forced.status == 0);
		CHECK(forced.out.find("1 records, 0 removed, 1 kept") != std::string::npos);
		CHECK(forced.out.find("empty, removed") != std::string::npos);
		CHECK(!fs::exists(orphan.dir));
		check_split(live);
		REQUIRE(live.poststop().status == 0);
		CHECK(live.overhead_gone());
	}

	TEST_CASE("ctl status of real QEMU: -smp 4 with debug-threads, through the settler")
	{
		std::string qemu = "/usr/bin/qemu-system-x86_64";
		REQUIRE_MESSAGE(fs::exists(qemu), "qemu-system-x86_64 is not installed");
		bool kvm = ::access("/dev/kvm", R_OK | W_OK) == 0;
		Sandbox sb("ctl-qemu");
		sb.configure(R"("vmm_names":["qemu-system-*"])" +
			     std::string(kvm ? "" : R"(,"vcpu_proof":"names")"));
		sb.start({qemu, "-accel", kvm ? "kvm" : "tcg", "-smp", "4", "-m", "128", "-name",
			  "vmmcg,debug-threads=on", "-nographic", "-nodefaults", "-no-user-config",
			  "-display", "none"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		// A thread QEMU or KVM makes after the settler ended (KVM's nx-lpage recovery worker, forked
		// by a vCPU thread in S at its first KVM_RUN: issue 13) is the watcher's: the hooks and the
		// watcher alone place everything, no reconcile. The bound is loose (a loaded CI machine, the
		// watcher at idle priority); how fast: the value benchmark.
		json c;
		CHECK(wait_until(
			[&] {
				c = status_json(config_of(sb), sb.id());
				return c["placement_ok"] == true;
			},
			10000));
		CHECK(c["vmm"]["name"].get<std::string>().starts_with("qemu-system-x86"));
		// Each thread as the status says, against /proc: vCPU threads in S, the others in O.
		std::size_t vcpus = 0;
		for (const auto &t : c["threads"]) {
			INFO("thread " << t.dump());
			bool vcpu = is_vcpu_name(t["name"]);
			vcpus += vcpu;
			CHECK(t["side"] == (vcpu ? "vcpu" : "overhead"));
			std::string want = vcpu ? sb.sandbox_path() : sb.overhead_path();
			CHECK(t["placed"] == (t["cgroups"]["cpu"] == want && t["cgroups"]["cpuset"] == want));
			CHECK(t["placed"] == true);
		}
		CHECK(vcpus == 4);
		// Nothing left for reconcile to do.
		Output reconciled = ctl(config_of(sb), {"reconcile", sb.id()});
		CHECK(reconciled.status == 0);
		CHECK(status_json(config_of(sb), sb.id())["placement_ok"] == true);
		Output text = ctl(config_of(sb), {"status", sb.id()});
		MESSAGE("status of QEMU (" << (kvm ? "kvm" : "tcg") << "):\n" << text.out);
		check_promtool(ctl(config_of(sb), {"status", "--prometheus"}).out);
		REQUIRE(sb.poststop().status == 0);
	}
}

namespace {

// A cgroup on this host's cgroup2 mount with a test VMM in it, removed with everything in it at the end.
struct UnifiedSandbox {
	std::string mount;
	std::string path;
	pid_t vmm = 0;

	explicit UnifiedSandbox(std::string m) : mount(std::move(m))
	{
		std::string exe = build_path("tests/test-vmm");
		std::string ready = "/tmp/vmmcg-it-" + std::to_string(::getpid()) + "-ctl-v2-ready";
		path = "/vmmcg-it-" + std::to_string(::getpid()) + "-ctl-v2";
		std::string procs = mount + path + "/cgroup.procs";
		fs::remove(ready);
		fs::create_directory(mount + path);
		vmm = ::fork();
		if (vmm == 0) {
			int fd = ::open(procs.c_str(), O_WRONLY);
			if (fd < 0 || ::write(fd, "0", 1) != 1)
				::_exit(126);
			::execl(exe.c_str(), exe.c_str(), "--vcpus", "2", "--io-threads", "2", "--ready-file",
				ready.c_str(), nullptr);
			::_exit(127);
		}
		if (vmm < 0 || !wait_until([&] { return fs::exists(ready); })) {
			clean_up();
			throw std::runtime_error("the test VMM did not start in " + mount + path);
		}
		fs::remove(ready);
	}
	~UnifiedSandbox() { clean_up(); }
	UnifiedSandbox(const UnifiedSandbox &) = delete;
	UnifiedSandbox &operator=(const UnifiedSandbox &) = delete;

	void kill_vmm()
	{
		if (vmm > 0) {
			::kill(vmm, SIGKILL);
			::waitpid(vmm, nullptr, 0);
			vmm = 0;
		}
	}
	void clean_up()
	{
		kill_vmm();
		for (const char *child : {"/vcpu", "/overhead"})
			wait_until(
				[&] {
					return ::rmdir((mount + path + child).c_str()) == 0 ||
					       errno == ENOENT;
				},
				2000);
		wait_until([&] { return ::rmdir((mount + path).c_str()) == 0 || errno == ENOENT; }, 2000);
	}
};

} // namespace

TEST_SUITE("integration-ctl")
{
	TEST_CASE("ctl on the v2 layout of this host's cgroup2 mount: status, reconcile, gc")
	{
		Mounts mounts = discover_mounts(detect_host_mode());
		REQUIRE_MESSAGE(!mounts.unified.empty(), "this host has no cgroup2 mount");
		UnifiedSandbox sb(mounts.unified);
		TempDir dir("ctl-v2");
		// As createRuntime and poststart would on a v2 host (on a hybrid one the hooks choose v1):
		// the layout, its backend, the placement loop, the record.
		LayoutInput input;
		input.host = HostMode::v2;
		input.mounts.unified = mounts.unified;
		input.sandbox = {{"", sb.path}};
		Record record;
		record.id = "vmmcg-it-" + std::to_string(::getpid()) + "-ctl-v2";
		record.bundle = dir.path + "/bundle";
		record.name = instance_name(record.id, record.bundle);
		record.host = HostMode::v2;
		record.cgroups = compute_layout(input);
		ProcFs proc;
		record.container = proc.process(sb.vmm);
		std::unique_ptr<Backend> backend = make_backend(record.cgroups);
		REQUIRE(backend->provision({}) == 2);
		Config config;
		config.vmm_names = {"test-vmm"};
		SettleResult placed =
			PlacementLoop(*backend, proc, PlacementOptions::from(config), *record.container)
				.run(std::chrono::steady_clock::now() + std::chrono::seconds(5));
		REQUIRE(placed.complete);
		record.vmm = placed.vmm;
		record.vcpus = placed.vcpus;
		record.vcpu_source = placed.vcpu_source;
		std::string records = dir.path + "/records";
		write_record(records, record);
		std::string config_file = dir.path + "/config.json";
		write_text(config_file, R"({"record_dir":")" + records +
						R"(","vmm_names":["test-vmm"],"log_syslog":false,)" +
						R"("overhead_root":"/vmmcg-it-)" +
						std::to_string(::getpid()) + R"(-ctl-v2-root"})");

		json c = status_json(config_file, record.id);
		CHECK(c["layout"] == "v2");
		CHECK(c["host"] == "v2");
		CHECK(c["placement_ok"] == true);
		REQUIRE(c["hierarchies"].size() == 1);
		const json &h = c["hierarchies"][0];
		CHECK(h["key"] == "");
		CHECK(h["vcpu"]["path"] == sb.path + "/vcpu");
		CHECK(h["vcpu"]["exists"] == true);
		CHECK(h["overhead"]["path"] == sb.path + "/overhead");
		check_threads(c, sb.vmm, "");
		// No cpu controller on a hybrid host's cgroup2 mount: usage from cpu.stat, no throttling.
		CHECK(c["cpu"]["source"] == "cpu.stat");
		CHECK(!c["cpu"]["vcpu"]["usage_ns"].is_null());
		check_promtool(ctl(config_file, {"status", "--prometheus"}).out);
		MESSAGE("status (v2 layout):\n" << ctl(config_file, {"status"}).out);

		// A vCPU thread moved to S/overhead by hand; reconcile brings it back.
		pid_t vcpu = placed.vcpus.at(0);
		std::error_code comm_ec;
		std::string vcpu_name = trimmed(proc.read_task(sb.vmm, vcpu, "comm", comm_ec));
		write_text(mounts.unified + sb.path + "/overhead/cgroup.threads", std::to_string(vcpu));
		CHECK(status_json(config_file, record.id)["placement_ok"] == false);
		Output reconciled = ctl(config_file, {"reconcile", record.id});
		MESSAGE("reconcile:\n" << reconciled.out << reconciled.err);
		CHECK(reconciled.status == 0);
		CHECK(reconciled.out.find(std::to_string(vcpu) + "  " + vcpu_name +
					  "  S/overhead -> S/vcpu\n") != std::string::npos);
		CHECK(where_now(sb.vmm, vcpu, "") == sb.path + "/vcpu");

		// The VMM killed, no poststop: gc removes the children, S is a domain again.
		Output kept = ctl(config_file, {"gc"});
		CHECK(kept.out.find("kept     " + record.id) != std::string::npos);
		sb.kill_vmm();
		Output collected = ctl(config_file, {"gc"});
		MESSAGE("gc:\n" << collected.out << collected.err);
		CHECK(collected.status == 0);
		CHECK(collected.out.find("removed  " + record.id) != std::string::npos);
		CHECK(!fs::exists(mounts.unified + sb.path + "/vcpu"));
		CHECK(!fs::exists(mounts.unified + sb.path + "/overhead"));
		CHECK(read_text(mounts.unified + sb.path + "/cgroup.type") == "domain");
		CHECK(!fs::exists(record_path(records, record.name)));
	}
}

namespace {

// A process of the test that only pauses: a host process a forged record may name. Killed (by its pid) and
// reaped at the end, also when the test fails.
struct Child {
	pid_t pid = 0;
	Child()
	{
		pid = ::fork();
		if (pid == 0) {
			for (;;)
				::pause();
		}
		REQUIRE(pid > 0);
		REQUIRE(wait_until([&] { return ProcFs().process(pid).has_value(); }, 2000));
	}
	~Child() { end(); }
	Child(const Child &) = delete;
	Child &operator=(const Child &) = delete;
	ProcessRef ref() const { return *ProcFs().process(pid); }
	void end()
	{
		if (pid > 0) {
			::kill(pid, SIGKILL);
			::waitpid(pid, nullptr, 0);
			pid = 0;
		}
	}
};

// The process reference of a process that has exited: what the record of a gone container names.
ProcessRef dead_process()
{
	Child child;
	ProcessRef ref = child.ref();
	child.end();
	return ref;
}

// A record of another instance made from `base`: another bundle, so another name; no VMM, settler or
// watcher unless the caller sets them.
Record forged_from(const Record &base, const std::string &id)
{
	Record forged = base;
	forged.id = id;
	forged.bundle = "/nonexistent/" + id;
	forged.name = instance_name(forged.id, forged.bundle);
	forged.vmm.reset();
	forged.vcpus.clear();
	forged.settler.reset();
	forged.watcher.reset();
	return forged;
}

// Every hierarchy of a v1 record, changed by `edit`.
template <typename Edit>
void edit_hierarchies(Record &record, Edit edit)
{
	for (auto &h : std::get<cgroup_v1::Layout>(record.cgroups).hierarchies)
		edit(h);
}

// The line of gc's report about one record.
std::string gc_line(const std::string &report, const std::string &id)
{
	std::size_t at = report.find("  " + id + " (");
	if (at == std::string::npos)
		return {};
	std::size_t start = report.rfind('\n', at);
	start = start == std::string::npos ? 0 : start + 1;
	return report.substr(start, report.find('\n', at) - start);
}

ProcessRef watcher_of(const Sandbox &sb)
{
	json watcher = sb.record()["watcher"];
	REQUIRE_MESSAGE(watcher.is_object(), "no watcher in " << sb.record().dump());
	return {watcher["pid"], watcher["start_time"]};
}

} // namespace

TEST_SUITE("integration-ctl")
{
	TEST_CASE("ctl gc stops the watcher of a gone container first, as poststop does")
	{
		Sandbox sb("ctl-gc-watched");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		ProcessRef watcher = watcher_of(sb);
		// Stopped, the watcher outlives the VMM (it would end within a second of it otherwise): a
		// watcher still running when gc comes.
		REQUIRE(::kill(watcher.pid, SIGSTOP) == 0);
		sb.kill_vmm();

		Output dry = ctl(sb.config_path(), {"gc", "--dry-run"});
		MESSAGE("gc --dry-run:\n" << dry.out << dry.err);
		CHECK(dry.status == 0);
		CHECK(gc_line(dry.out, sb.id()).find("remove ") != std::string::npos);
		CHECK(gc_line(dry.out, sb.id()).ends_with("; its watcher still runs: stopped first"));
		CHECK(ProcFs().alive(watcher));
		CHECK(!sb.overhead_gone());

		Output collected = ctl(sb.config_path(), {"gc"});
		MESSAGE("gc:\n" << collected.out << collected.err);
		CHECK(collected.status == 0);
		CHECK(gc_line(collected.out, sb.id()).find("removed") != std::string::npos);
		// The watcher of a VMM that has ended is SIGKILLed and not waited for (cleanup.cpp): it dies
		// as soon as the kernel delivers the signal, which on a loaded machine is not at once.
		CHECK(wait_until([&] { return !ProcFs().alive(watcher); }, 2000));
		CHECK(sb.overhead_gone());
		CHECK(!fs::exists(sb.record_file()));
	}

	TEST_CASE("ctl gc as an attacker: forged records cannot make it stop or remove what is a live "
		  "container's")
	{
		TempDir dir("ctl-gc-forged");
		Sandbox live("ctl-gc-target");
		live.start_test_vmm({"--vcpus", "2"});
		REQUIRE(live.create_runtime().status == 0);
		REQUIRE(live.poststart().status == 0);
		check_split(live);
		ProcessRef live_watcher = watcher_of(live);
		std::string records = live.record_dir();
		std::optional<Record> base = read_record(records, live.instance(), live.id());
		REQUIRE(base);
		ProcessRef dead = dead_process();
		std::string prefix = parent_path(live.sandbox_path());
		auto own_cgroups = [&](Record &r, const std::string &tag) {
			edit_hierarchies(r, [&](cgroup_v1::Hierarchy &h) {
				h.sandbox = prefix + "/" + tag + "-gone";
				h.overhead = prefix + "/vmm-overhead-" + r.name;
			});
		};

		// 1. The live record's text under another instance's name: not the record of its name.
		std::string copy_name = live.id() + "-0123456789abcdef";
		fs::copy_file(live.record_file(), records + "/" + copy_name + ".json");
		// 2. A gone container whose O is the live container's O, and whose S no longer exists.
		Record steal_o = forged_from(*base, live.id() + "-steal-o");
		steal_o.container = dead;
		edit_hierarchies(steal_o,
				 [&](cgroup_v1::Hierarchy &h) { h.sandbox = prefix + "/steal-o-gone"; });
		write_record(records, steal_o);
		// 3. A gone container whose watcher is the live container's.
		Record steal_watcher = forged_from(*base, live.id() + "-steal-watcher");
		steal_watcher.container = dead;
		own_cgroups(steal_watcher, "steal-watcher");
		steal_watcher.watcher = live_watcher;
		write_record(records, steal_watcher);
		// 4. A gone container whose "watcher" is a host process, not poststart's settler.
		Child host;
		Record foreign = forged_from(*base, live.id() + "-foreign");
		foreign.container = dead;
		own_cgroups(foreign, "foreign");
		foreign.watcher = host.ref();
		write_record(records, foreign);
		// 5. A gone container whose mounts are plain directories, with S and O made in them.
		Record outside = forged_from(*base, live.id() + "-outside");
		outside.container = dead;
		edit_hierarchies(outside, [&](cgroup_v1::Hierarchy &h) {
			h.mount = dir.path + "/fake" + h.mount;
			fs::create_directories(h.mount + h.sandbox);
			fs::create_directories(h.mount + h.overhead);
		});
		write_record(records, outside);
		std::string live_record = read_text(live.record_file());

		Output collected = ctl(live.config_path(), {"gc", "--force-orphans"});
		MESSAGE("gc:\n" << collected.out << collected.err);
		CHECK(collected.status == 0);
		CHECK(collected.out.find("gc: 5 records, 0 removed, 5 kept") == 0);
		CHECK(collected.out.find("unreadable " + records + "/" + copy_name + ".json: ") !=
		      std::string::npos);
		CHECK(gc_line(collected.out, live.id()).find("the container's process is alive") !=
		      std::string::npos);
		CHECK(gc_line(collected.out, steal_o.id).find("its cgroups still hold tasks") !=
		      std::string::npos);
		CHECK(gc_line(collected.out, steal_watcher.id).find("is named by another record too") !=
		      std::string::npos);
		CHECK(gc_line(collected.out, foreign.id).find("not vmm-cgroup-poststart: left alone") !=
		      std::string::npos);
		CHECK(gc_line(collected.out, outside.id).find("is not a cgroup file system") !=
		      std::string::npos);
		// The live container: its O, its watcher, its record and its placement as they were.
		CHECK(!live.overhead_gone());
		CHECK(ProcFs().alive(live_watcher));
		CHECK(read_text(live.record_file()) == live_record);
		check_split(live);
		// Nothing of the others either: the host process runs, the forged records and directories
		// stay.
		CHECK(ProcFs().alive(host.ref()));
		for (const Record *r : {&steal_o, &steal_watcher, &foreign, &outside})
			CHECK(fs::exists(record_path(records, r->name)));
		edit_hierarchies(outside, [&](const cgroup_v1::Hierarchy &h) {
			CHECK(fs::is_directory(h.mount + h.overhead));
		});
		// The forged records gone, the live container is collected by poststop, not gc.
		for (const Record *r : {&steal_o, &steal_watcher, &foreign, &outside})
			fs::remove(record_path(records, r->name));
		fs::remove(records + "/" + copy_name + ".json");
		REQUIRE(live.poststop().status == 0);
		CHECK(live.overhead_gone());
		CHECK(!ProcFs().alive(live_watcher));
	}

	TEST_CASE("ctl reconcile as an attacker: a forged record, one outside the cgroup mounts, a pid that "
		  "is no longer the VMM")
	{
		TempDir dir("ctl-reconcile-forged");
		// Made before the sandbox, removed after it: a cgroup without limits a forged record names as
		// O.
		MadeCgroup attacker(cgroup_root + "/cpu/vmmcg-it-" + std::to_string(::getpid()) +
				    "-ctl-attacker");
		Sandbox live("ctl-reconcile-target");
		live.configure(R"("watch_vmm":false)");
		live.start_test_vmm({"--vcpus", "2", "--io-threads", "1"});
		REQUIRE(live.create_runtime().status == 0);
		REQUIRE(live.poststart().status == 0);
		check_split(live);
		std::optional<Record> base = read_record(live.record_dir(), live.instance(), live.id());
		REQUIRE(base);
		Child host;
		std::string host_cpu = where_now(host.pid, host.pid, "cpu");
		auto reconcile_of = [&](const Record &r) {
			write_record(live.record_dir(), r);
			Output out = ctl(live.config_path(), {"reconcile", r.name});
			MESSAGE("reconcile " << r.name << ":\n" << out.out << out.err);
			fs::remove(record_path(live.record_dir(), r.name));
			return out;
		};

		// A record whose container is a host process: poststart takes it from the runtime, reconcile
		// from the record, and refuses one that is not in the record's cgroups.
		Record host_container = forged_from(*base, live.id() + "-host");
		host_container.container = host.ref();
		Output refused = reconcile_of(host_container);
		CHECK(refused.status == 1);
		CHECK(refused.out.find(host_container.id + ": FAILED: the container's process (pid " +
				       std::to_string(host.pid) + ") is in " + host_cpu) == 0);
		CHECK(where_now(host.pid, host.pid, "cpu") == host_cpu);

		// The live container's own process, with O replaced by a cgroup without limits: its VMM is in
		// neither S nor that cgroup.
		Record to_attacker = forged_from(*base, live.id() + "-attacker");
		edit_hierarchies(to_attacker, [&](cgroup_v1::Hierarchy &h) {
			h.overhead = attacker.dir.substr((cgroup_root + "/cpu").size());
		});
		Output moved_nothing = reconcile_of(to_attacker);
		CHECK(moved_nothing.status == 1);
		CHECK(moved_nothing.out.find(": FAILED: ") != std::string::npos);
		CHECK(moved_nothing.out.find("refusing") != std::string::npos);
		CHECK(read_text(attacker.dir + "/tasks").empty());

		// The live container's cgroups, on mounts that are plain directories.
		Record outside = forged_from(*base, live.id() + "-outside");
		edit_hierarchies(outside, [&](cgroup_v1::Hierarchy &h) {
			h.mount = dir.path + "/fake" + h.mount;
			fs::create_directories(h.mount + h.sandbox);
		});
		Output not_cgroupfs = reconcile_of(outside);
		CHECK(not_cgroupfs.status == 1);
		CHECK(not_cgroupfs.out.find("is not a cgroup file system") != std::string::npos);
		check_split(live);

		// The live record itself, with a vCPU moved to O by hand, and its VMM's pid given to the host
		// process: first with another start time (the pid reused), then with the host process's own.
		pid_t vcpu = first_vcpu(live);
		for (bool same_start : {false, true}) {
			CAPTURE(same_start);
			for (const auto &c : Sandbox::cpu_controllers())
				write_text(cgroup_root + "/" + c + live.overhead_path() + "/tasks",
					   std::to_string(vcpu));
			Record stale = *base;
			stale.vmm = host.ref();
			if (!same_start)
				stale.vmm->start_time += 1;
			write_record(live.record_dir(), stale);
			json status = status_json(live.config_path(), live.id());
			CHECK(status["vmm"]["pid"] ==
			      live.vmm()); // found from the container, as poststart does
			CHECK(status["vmm"]["recorded"] == false);
			CHECK(status["placement_ok"] == false);
			Output placed = ctl(live.config_path(), {"reconcile", live.id()});
			MESSAGE("reconcile with a stale VMM pid:\n" << placed.out << placed.err);
			CHECK(placed.status == 0);
			CHECK(placed.out.find(live.id() + ": placed: VMM pid " +
					      std::to_string(live.vmm())) == 0);
			CHECK(placed.out.find("  " + std::to_string(vcpu) + "  CPU 0/KVM  O -> S\n") !=
			      std::string::npos);
			check_split(live);
			CHECK(where_now(host.pid, host.pid, "cpu") == host_cpu);
			CHECK(live.record()["vmm"]["pid"] == live.vmm());
		}
		REQUIRE(live.poststop().status == 0);
		CHECK(live.overhead_gone());
	}
}

TEST_SUITE("hostile")
{
	TEST_CASE("--settler by hand: the binary run as a settler for a live container's record acts on "
		  "nothing; "
		  "the other stages and bad numbers are refused")
	{
		Sandbox sb("by-hand");
		pid_t vmm = sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		ProcessRef watcher = watcher_of(sb);
		auto vmm_ref = ProcFs().process(vmm);
		REQUIRE(vmm_ref);
		std::this_thread::sleep_for(std::chrono::seconds(1)); // the watcher's first pass is done
		std::string before = read_text(sb.record_file());
		std::string poststart = build_path("hooks/vmm-cgroup-poststart");
		// Everything a settler is started with, and the container's real process: the record names
		// another process (the real watcher), so this one reads it and ends.
		Output by_hand =
			run_program({poststart, "--settler", sb.instance(), sb.id(), std::to_string(vmm),
				     std::to_string(vmm_ref->start_time), "--config", config_of(sb)});
		CHECK(by_hand.status == 0);
		CHECK(read_text(sb.record_file()) == before);
		CHECK(ProcFs().alive(watcher));
		check_split(sb);

		Output create = run_program({build_path("hooks/vmm-cgroup-create-runtime"), "--settler",
					     sb.instance(), sb.id(), "1", "2"});
		CHECK(create.status == 2);
		CHECK(create.err.find("argument '--settler': only poststart starts a settler") !=
		      std::string::npos);
		Output bad = run_program({poststart, "--settler", sb.instance(), sb.id(), "1x", "2"});
		CHECK(bad.status == 2);
		CHECK(bad.err.find("argument '--settler': '1x' is no number") != std::string::npos);
		// A pid of 0, or one that only a cast would make a pid (2^32 - 1 was -1): refused, not used.
		for (const char *pid : {"0", "4294967295", "-1"}) {
			INFO("pid " << pid);
			Output refused =
				run_program({poststart, "--settler", sb.instance(), sb.id(), pid, "2"});
			CHECK(refused.status == 2);
			CHECK(refused.err.find("is no number of 1 or more") != std::string::npos);
		}
		// A name that climbs out of the record directory, an id that would forge a log line: refused
		// before either names a file or reaches the log, in one line.
		for (const auto &[name, id] :
		     {std::pair<std::string, std::string>{"../" + sb.instance(), sb.id()},
		      {sb.instance(), sb.id() + "\ninfo: forged"}}) {
			Output refused =
				run_program({poststart, "--settler", name, id, std::to_string(vmm), "2"});
			CHECK(refused.status == 2);
			CHECK(refused.err.find("is no record name or id") != std::string::npos);
			CHECK(std::count(refused.err.begin(), refused.err.end(), '\n') == 1);
		}
		CHECK(read_text(sb.record_file()) == before);
		CHECK(ProcFs().alive(watcher));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE(
		"a hook installed set-user-id root refuses to run for anyone else (it would make them root)")
	{
		// A copy of poststop, run by nobody: as installed (0755) it runs (--help), set-user-id it is
		// refused before it reads anything.
		char dir_template[] = "/var/tmp/vmmcg-it-suid-XXXXXX";
		REQUIRE(::mkdtemp(dir_template) != nullptr);
		std::string dir = dir_template;
		ScopeExit remove_dir([&] { fs::remove_all(dir); });
		fs::permissions(dir, fs::perms(0755));
		std::string copy = dir + "/vmm-cgroup-poststop";
		fs::copy_file(build_path("hooks/vmm-cgroup-poststop"), copy);
		auto as_nobody = [&] {
			return run_program({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
					    copy, "--help"});
		};
		fs::permissions(copy, fs::perms(0755));
		Output plain = as_nobody();
		CHECK_MESSAGE(plain.status == 0, plain.err);
		REQUIRE(::chmod(copy.c_str(), 04755) == 0);
		Output setuid = as_nobody();
		CHECK(setuid.status == 2);
		CHECK(setuid.err.find("runs with set-user-id or file capabilities: refused") !=
		      std::string::npos);
		CHECK(setuid.out.empty());
	}
}
