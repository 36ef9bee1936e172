// The v2 threaded layout on this host's real cgroup2 mount. On a hybrid host that is the unified mount
// (no cpu controller there, but threaded cgroups and thread moves work), driven through the library since
// the hooks choose the v1 layout on such a host. The full v2 path, limits included, runs in the v2guest
// suite on a pure cgroup v2 kernel.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <doctest/doctest.h>

#include "config.h"
#include "discovery.h"
#include "host.h"
#include "layout.h"
#include "placement.h"
#include "backend.h"
#include "procfs.h"
#include "record.h"
#include "text.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace vmmcg;

namespace {

std::string read_text(const std::string &path)
{
	std::ifstream in(path);
	std::stringstream buf;
	buf << in.rdbuf();
	std::string text = buf.str();
	while (!text.empty() && text.back() == '\n')
		text.pop_back();
	return text;
}

// A cgroup2 sandbox with a test VMM in it; removed with everything in it at the end.
struct V2Sandbox {
	std::string mount;
	std::string path;
	pid_t vmm = 0;

	explicit V2Sandbox(std::string m, bool churn = false) : mount(std::move(m))
	{
		// Everything that can throw comes before the fork (a throw in the child would run the rest of
		// the tests there), and a failure after the mkdir removes what was made: a constructor that
		// throws gets no destructor.
		std::string exe = test::build_path("tests/test-vmm");
		std::string ready = "/tmp/vmmcg-it-" + std::to_string(::getpid()) + "-v2-ready";
		path = "/vmmcg-it-" + std::to_string(::getpid()) + "-v2";
		std::string procs = mount + path + "/cgroup.procs";
		fs::remove(ready);
		fs::create_directory(mount + path);
		vmm = ::fork();
		if (vmm == 0) {
			int fd = ::open(procs.c_str(), O_WRONLY);
			if (fd < 0 || ::write(fd, "0", 1) != 1)
				::_exit(126);
			if (churn)
				::execl(exe.c_str(), exe.c_str(), "--vcpus", "3", "--io-threads", "2",
					"--churn-vcpus", "--ready-file", ready.c_str(), nullptr);
			else
				::execl(exe.c_str(), exe.c_str(), "--vcpus", "3", "--io-threads", "2",
					"--ready-file", ready.c_str(), nullptr);
			::_exit(127);
		}
		try {
			REQUIRE(vmm > 0);
			REQUIRE(test::wait_until([&] { return fs::exists(ready); }));
		} catch (...) {
			clean_up();
			throw;
		}
		fs::remove(ready);
	}
	~V2Sandbox() { clean_up(); }
	V2Sandbox(const V2Sandbox &) = delete;
	V2Sandbox &operator=(const V2Sandbox &) = delete;

	void clean_up()
	{
		if (vmm > 0) {
			::kill(vmm, SIGKILL);
			::waitpid(vmm, nullptr, 0);
			vmm = 0;
		}
		for (const char *child : {"/vcpu", "/overhead"})
			::rmdir((mount + path + child).c_str());
		test::wait_until([&] { return ::rmdir((mount + path).c_str()) == 0 || errno == ENOENT; },
				 2000);
	}
};

void write_file(const std::string &path, const std::string &text)
{
	std::ofstream out(path);
	out << text;
	REQUIRE(out.good());
}

// The VMM of sb split into S/vcpu and S/overhead, as createRuntime and poststart make it on a v2 host. A
// churning VMM is never complete (its threads keep changing): placed is enough.
cgroup_v2::Layout split_on_v2(const V2Sandbox &sb, SettleResult &result, bool churning = false)
{
	LayoutInput input;
	input.host = HostMode::v2;
	input.mode = Mode::split;
	input.mounts.unified = sb.mount;
	input.sandbox = {{"", sb.path}};
	CgroupLayout layout = compute_layout(input);
	REQUIRE(std::holds_alternative<cgroup_v2::Layout>(layout));
	std::unique_ptr<Backend> backend = make_backend(layout);
	REQUIRE(backend->provision({}) == 2);
	ProcFs proc;
	Config config;
	config.vmm_names = {"test-vmm"};
	auto container = proc.process(sb.vmm);
	REQUIRE(container);
	result = PlacementLoop(*backend, proc, PlacementOptions::from(config), *container)
			 .run(std::chrono::steady_clock::now() + std::chrono::seconds(5));
	REQUIRE((result.complete || (churning && !result.vcpus.empty())));
	return std::get<cgroup_v2::Layout>(layout);
}

// Where the threads of pid are in cgroup2: path -> number of threads.
std::map<std::string, int> threads_by_cgroup(pid_t pid)
{
	ProcFs proc;
	std::error_code ec;
	std::map<std::string, int> out;
	for (pid_t tid : proc.thread_ids(pid, ec)) {
		ProcCgroups where = parse_proc_cgroup(proc.read_task(pid, tid, "cgroup", ec));
		if (auto it = where.find(""); it != where.end())
			++out[it->second]; // else exited since it was listed (a churned thread)
	}
	return out;
}

// The wrapper's kill --all over a VMM split on v2; with churn, a thread of the VMM's overhead keeps cloning
// short-lived threads, which a drain thread by thread could not outrun.
void check_kill_all(bool churn)
{
	Mounts mounts = discover_mounts(detect_host_mode());
	REQUIRE(!mounts.unified.empty());
	V2Sandbox sb(mounts.unified, churn);
	SettleResult placed;
	cgroup_v2::Layout layout = split_on_v2(sb, placed, churn);
	const std::string s_dir = sb.mount + sb.path;

	std::string dir = "/tmp/vmmcg-it-" + std::to_string(::getpid()) + "-killall";
	fs::remove_all(dir);
	fs::create_directories(dir + "/records");
	struct RemoveDir {
		std::string dir;
		~RemoveDir() { fs::remove_all(dir); }
	} remove_dir{dir};
	std::string id = "vmmcg-it-killall";
	std::string bundle = dir + "/bundle";
	Record record;
	record.id = id;
	record.bundle = bundle;
	record.name = instance_name(id, bundle);
	record.container = ProcFs().process(sb.vmm);
	record.host = HostMode::v2;
	record.cgroups = layout;
	record.vmm = placed.vmm;
	record.vcpus = placed.vcpus;
	record.vcpu_source = placed.vcpu_source;
	write_record(dir + "/records", record);
	std::string record_file = record_path(dir + "/records", record.name);

	// A stand-in for runc: it records its arguments and reads cgroup.procs of S and of every
	// cgroup below it, as runc 1.1's kill --all does; a threaded cgroup refuses that read.
	write_file(dir + "/runtime",
		   "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + dir + "/argv\nread=ok\nfor f in " + s_dir +
			   "/cgroup.procs " + s_dir +
			   "/*/cgroup.procs; do [ -e \"$f\" ] || continue; cat \"$f\" > /dev/null || "
			   "read=refused; done\n"
			   "echo $read > " +
			   dir + "/procs\n");
	fs::permissions(dir + "/runtime", fs::perms::owner_all);
	write_file(dir + "/hooks.json", R"({"record_dir":")" + dir + R"(/records","log_syslog":false})");
	write_file(dir + "/runtime.json",
		   R"({"runtime":")" + dir + R"(/runtime","hook_config":")" + dir + R"(/hooks.json"})");
	auto wrapper = [&](const std::string &args) {
		std::string command = "VMMCG_RUNTIME_CONFIG=" + dir + "/runtime.json " +
				      test::build_path("runtime/vmm-cgroup-runtime") + " " + args + " 2>" +
				      dir + "/stderr";
		int status = std::system(command.c_str());
		return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	};

	// A kill without --all changes nothing: the split stays, and the runtime would trip over it.
	CHECK(wrapper("--root " + dir + "/root kill " + id + " TERM") == 0);
	CHECK(read_text(dir + "/procs") == "refused");
	CHECK(fs::exists(record_file));
	CHECK(threads_by_cgroup(sb.vmm).size() == 2);

	CHECK(wrapper("--root " + dir + "/root --log-format json kill --all " + id + " KILL") == 0);
	CHECK(read_text(dir + "/argv") ==
	      "--root\n" + dir + "/root\n--log-format\njson\nkill\n--all\n" + id + "\nKILL");
	CHECK(read_text(dir + "/procs") == "ok");
	std::string err = read_text(dir + "/stderr");
	INFO("wrapper stderr: " << err);
	CHECK(err.find("kill --all: the split on cgroup v2 undone first") != std::string::npos);
	auto where = threads_by_cgroup(sb.vmm);
	CHECK(where.size() == 1); // every thread of the VMM, vCPUs included, back in S
	CHECK(where.count(sb.path) == 1);
	CHECK(!fs::exists(s_dir + "/vcpu"));
	CHECK(!fs::exists(s_dir + "/overhead"));
	CHECK(read_text(s_dir + "/cgroup.type") == "domain");
	CHECK(!fs::exists(record_file));

	// poststop after it has nothing left to do.
	std::string state = R"({"ociVersion":"1.0.2","id":")" + id + R"(","status":"stopped","bundle":")" +
			    bundle + R"("})";
	std::string poststop = "echo '" + state + "' | " + test::build_path("hooks/vmm-cgroup-poststop") +
			       " --config " + dir + "/hooks.json 2>" + dir + "/poststop.err";
	CHECK(std::system(poststop.c_str()) == 0);
	CHECK(read_text(dir + "/poststop.err").find("no record") != std::string::npos);
}

} // namespace

TEST_SUITE("integration-v2")
{
	TEST_CASE("v2 layout on the real cgroup2 mount: threaded children, thread moves, back to domain")
	{
		HostMode host = detect_host_mode();
		Mounts mounts = discover_mounts(host);
		REQUIRE_MESSAGE(!mounts.unified.empty(), "this host has no cgroup2 mount");
		V2Sandbox sb(mounts.unified);

		LayoutInput input;
		input.host = HostMode::v2; // the v2 layout, on whatever cgroup2 mount this host has
		input.mode = Mode::split;
		input.instance = "unused-on-v2";
		input.mounts.unified = mounts.unified;
		input.sandbox = {{"", sb.path}};
		CgroupLayout layout = compute_layout(input);
		REQUIRE(std::holds_alternative<cgroup_v2::Layout>(layout));
		std::unique_ptr<Backend> backend = make_backend(layout);

		CHECK(backend->provision({}) == 2);
		CHECK(read_text(sb.mount + sb.path + "/cgroup.type") == "domain threaded");
		CHECK(read_text(sb.mount + sb.path + "/vcpu/cgroup.type") == "threaded");
		CHECK(read_text(sb.mount + sb.path + "/overhead/cgroup.type") == "threaded");

		ProcFs proc;
		Config config;
		config.vmm_names = {"test-vmm"};
		auto container = proc.process(sb.vmm);
		REQUIRE(container);
		SettleResult result =
			PlacementLoop(*backend, proc, PlacementOptions::from(config), *container)
				.run(std::chrono::steady_clock::now() + std::chrono::seconds(5));
		CHECK(result.complete);
		CHECK(result.vcpus.size() == 3);
		std::error_code ec;
		for (pid_t tid : proc.thread_ids(sb.vmm, ec)) {
			std::string name = trimmed(proc.read_task(sb.vmm, tid, "comm", ec));
			ProcCgroups where = parse_proc_cgroup(proc.read_task(sb.vmm, tid, "cgroup", ec));
			INFO("thread " << tid << " '" << name << "'");
			CHECK(where.at("") == sb.path + (test::is_vcpu_name(name) ? "/vcpu" : "/overhead"));
			// v1 hierarchies are not part of this layout: nothing moved there.
			CHECK(where.at("cpu").find("vmmcg") == std::string::npos);
		}

		Teardown teardown = backend->teardown();
		CHECK(teardown.failures == 0);
		CHECK(teardown.summary() == "removed S/overhead and S/vcpu");
		CHECK(!fs::exists(sb.mount + sb.path + "/vcpu"));
		CHECK(!fs::exists(sb.mount + sb.path + "/overhead"));
		CHECK(read_text(sb.mount + sb.path + "/cgroup.type") == "domain");
		for (pid_t tid : proc.thread_ids(sb.vmm, ec))
			CHECK(parse_proc_cgroup(proc.read_task(sb.vmm, tid, "cgroup", ec)).at("") == sb.path);
		// Once more, as when the runtime removed them first: nothing removed, and said so.
		CHECK(backend->teardown().summary() == "S/overhead and S/vcpu were removed already");
	}

	TEST_CASE("v2: writing a thread id to cgroup.procs of a threaded child is refused "
		  "(kata-containers#4886)")
	{
		Mounts mounts = discover_mounts(detect_host_mode());
		REQUIRE(!mounts.unified.empty());
		V2Sandbox sb(mounts.unified);
		LayoutInput input;
		input.host = HostMode::v2;
		input.mounts.unified = mounts.unified;
		input.sandbox = {{"", sb.path}};
		CgroupLayout layout = compute_layout(input);
		std::unique_ptr<Backend> backend = make_backend(layout);
		backend->provision({});
		// Kata writes vCPU tids to cgroup.procs; the kernel either refuses or moves the whole
		// process.
		ProcFs proc;
		std::error_code ec;
		pid_t vcpu = 0;
		for (pid_t tid : proc.thread_ids(sb.vmm, ec))
			if (test::is_vcpu_name(trimmed(proc.read_task(sb.vmm, tid, "comm", ec))))
				vcpu = tid;
		REQUIRE(vcpu != 0);
		std::ofstream out(sb.mount + sb.path + "/vcpu/cgroup.procs");
		out << vcpu;
		out.flush();
		bool refused = !out;
		std::size_t in_vcpu = 0, total = 0;
		for (pid_t tid : proc.thread_ids(sb.vmm, ec)) {
			++total;
			in_vcpu += parse_proc_cgroup(proc.read_task(sb.vmm, tid, "cgroup", ec)).at("") ==
				   sb.path + "/vcpu";
		}
		MESSAGE("cgroup.procs write " << std::string(refused ? "refused" : "accepted")
					      << "; threads in vcpu: " << in_vcpu << " of " << total);
		CHECK((refused ||
		       in_vcpu == total)); // never just the one vCPU: cgroup.threads is the only way
		CHECK(backend->teardown().failures == 0);
	}

	TEST_CASE("vmm-cgroup-runtime kill --all: the v2 split is undone before the runtime runs "
		  "(opencontainers/runc#3821)")
	{
		check_kill_all(false);
	}

	TEST_CASE("vmm-cgroup-runtime kill --all: undone at once although the VMM keeps cloning threads")
	{
		check_kill_all(true);
	}
}
