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
#include <sstream>

#include <doctest/doctest.h>

#include "config.h"
#include "discovery.h"
#include "host.h"
#include "layout.h"
#include "placement.h"
#include "backend.h"
#include "procfs.h"
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

	explicit V2Sandbox(std::string m) : mount(std::move(m))
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
			::execl(exe.c_str(), exe.c_str(), "--vcpus", "3", "--io-threads", "2", "--ready-file",
				ready.c_str(), nullptr);
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
}
