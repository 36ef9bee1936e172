// The watcher: after placement, new threads of a placed VMM are placed by themselves (a hot-plugged vCPU,
// of the test VMM and of real QEMU/KVM over QMP device_add), and the process events it sleeps on.
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "proc_events.h"
#include "unique_fd.h"

using namespace vmmcg::test;
using nlohmann::json;

namespace {

// A QMP client for the test's own QEMU: blocking, with a receive timeout so that a QEMU that never answers
// fails the test instead of hanging it.
class QmpClient
{
public:
	explicit QmpClient(const std::string &path)
	{
		fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		struct timeval timeout {
			5, 0
		};
		::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
		if (fd_.get() < 0 ||
		    ::connect(fd_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
			throw std::runtime_error("cannot connect to QMP at " + path);
		read_message(); // the greeting
		call("qmp_capabilities");
	}

	// Sends a command; its reply ({"return": ...} or {"error": ...}), events before it skipped.
	json call(const std::string &command, const json &arguments = json::object())
	{
		json request = {{"execute", command}};
		if (!arguments.empty())
			request["arguments"] = arguments;
		std::string line = request.dump() + "\n";
		if (::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
		    static_cast<ssize_t>(line.size()))
			throw std::runtime_error("QMP send failed");
		for (;;) {
			json reply = read_message();
			if (reply.contains("return") || reply.contains("error"))
				return reply;
		}
	}

private:
	json read_message()
	{
		for (;;) {
			if (auto end = buffer_.find('\n'); end != std::string::npos) {
				std::string line = buffer_.substr(0, end);
				buffer_.erase(0, end + 1);
				return json::parse(line);
			}
			char chunk[4096];
			ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
			if (n <= 0)
				throw std::runtime_error("QMP closed or timed out");
			buffer_.append(chunk, static_cast<std::size_t>(n));
		}
	}

	vmmcg::UniqueFd fd_;
	std::string buffer_;
};

// Where a thread of the VMM is against where the layout wants it: vCPUs in S, everything else in O, in
// the hierarchies that split (cpu, cpuset).
bool on_its_side(const Sandbox &sb, const ThreadPlacement &t)
{
	const std::string &want = is_vcpu_name(t.name) ? sb.sandbox_path() : sb.overhead_path();
	for (const auto &c : Sandbox::cpu_controllers())
		if (t.where.at(c) != want)
			return false;
	return true;
}

} // namespace

TEST_SUITE("watcher")
{
	TEST_CASE("the process events connector reports this process's new thread, and nothing of others")
	{
		auto events = vmmcg::ProcEvents::open();
		REQUIRE_MESSAGE(events, "the proc connector is refused here (needs CAP_NET_ADMIN)");
		REQUIRE(events->watch({::getpid()}));
		pid_t tid = 0;
		std::thread([&] { tid = ::gettid(); }).join();
		bool lost = false, seen = false;
		auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
		while (!seen && std::chrono::steady_clock::now() < deadline)
			for (const auto &event : events->wait(std::chrono::milliseconds(200), lost))
				seen |= event.kind == vmmcg::ProcEvent::Kind::fork && event.pid == tid &&
					event.tgid == ::getpid();
		CHECK(seen);
		// The filter passes only the watched thread groups: the fork that made a child is ours and is
		// reported, but nothing the child does after (its exec, its threads, their names).
		REQUIRE(events->watch({::getpid()}));
		Sandbox sb("events-other");
		pid_t other = sb.start_test_vmm({"--vcpus", "2"});
		std::size_t of_child = 0;
		for (const auto &event : events->wait(std::chrono::milliseconds(300), lost))
			if (event.tgid == other && event.parent_tgid != ::getpid())
				++of_child;
		CHECK(of_child == 0);
	}

	TEST_CASE("no poststop came: once the container is dead and S removed, the watcher cleans up")
	{
		Sandbox sb("orphan");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto watcher = sb.watcher();
		REQUIRE(watcher);
		// Named by the record as soon as poststart has cloned it; SCHED_IDLE from its first system
		// calls and named vmm-cgroup-post after its exec, which a loaded machine (CI's) may put off.
		std::string comm = "/proc/" + std::to_string(watcher->pid) + "/comm";
		REQUIRE(wait_until([&] { return file_text(comm) == "vmm-cgroup-post\n"; }, 10000));
		CHECK(::sched_getscheduler(watcher->pid) == SCHED_IDLE); // while it watches a live VMM
		sb.kill_vmm();
		// While S is there the container may still be deleted by its runtime, with poststop: nothing
		// goes.
		std::this_thread::sleep_for(std::chrono::milliseconds(1500));
		CHECK(std::filesystem::exists(sb.record_file()));
		CHECK_FALSE(sb.overhead_gone());
		// Waiting for poststop, out of SCHED_IDLE but still at nice 19.
		CHECK(::sched_getscheduler(watcher->pid) == SCHED_OTHER);
		errno = 0;
		CHECK(::getpriority(PRIO_PROCESS, static_cast<id_t>(watcher->pid)) == 19);
		CHECK(errno == 0);
		REQUIRE(sb.remove_sandbox());
		// The watcher looks once a second and cleans up after 10 s of S gone, at nice 19 (the orphan
		// wait leaves SCHED_IDLE): on a loaded machine (CI's) its turn may still come late. The wait
		// is its whole 60 s window; it ends as soon as the clean-up is seen.
		CHECK(wait_until(
			[&] { return !std::filesystem::exists(sb.record_file()) && sb.overhead_gone(); },
			60000));
		CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 10000));
		CHECK(sb.poststop().status == 0); // late, and idempotent
	}

	TEST_CASE(
		"the watcher is poststart's binary executed again: its own session, stdio on /dev/null, its "
		"go pipe and slot, no environment, idle priority")
	{
		Sandbox sb("exec");
		sb.start_test_vmm({"--vcpus", "2"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0); // returned: the watcher holds none of the hook's pipes
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto watcher = sb.watcher();
		REQUIRE(watcher);
		std::string proc = "/proc/" + std::to_string(watcher->pid);
		CHECK(std::filesystem::read_symlink(proc + "/exe").filename() == "vmm-cgroup-poststart");
		// An exec of /proc/self/exe names the process "exe" until the settler names itself.
		CHECK(wait_until([&] { return file_text(proc + "/comm") == "vmm-cgroup-post\n"; }, 5000));
		CHECK(file_text(proc + "/environ").empty());
		std::string cmdline = file_text(proc + "/cmdline");
		std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
		CHECK(cmdline.find(" --settler " + sb.instance() + " ") != std::string::npos);
		CHECK(::getsid(watcher->pid) == watcher->pid);
		CHECK(::sched_getscheduler(watcher->pid) == SCHED_IDLE);
		// Not in the runtime's bundle directory; the go pipe and the slot close-on-exec once it runs
		// (the systemd helper inherits neither). Both done before it named itself.
		CHECK(std::filesystem::read_symlink(proc + "/cwd") == "/");
		for (int fd : {3, 4}) {
			std::istringstream info(file_text(proc + "/fdinfo/" + std::to_string(fd)));
			std::string key, flags;
			while (info >> key >> flags && key != "flags:") {
			}
			INFO("fd " << fd << " flags " << flags);
			CHECK((std::stoul(flags, nullptr, 8) & O_CLOEXEC) != 0);
		}
		// 0-2 /dev/null, 3 the go pipe, 4 the slot; above them only what the watcher opened itself
		// (the events connector, pidfds), no pipe of the hook's.
		std::map<int, std::string> fds;
		for (const auto &entry : std::filesystem::directory_iterator(proc + "/fd")) {
			std::error_code gone; // an fd the watcher had open for a moment (a record it read)
			std::string target = std::filesystem::read_symlink(entry.path(), gone);
			if (!gone)
				fds[std::stoi(entry.path().filename())] = target;
		}
		for (int fd = 0; fd < 3; ++fd)
			CHECK(fds[fd] == "/dev/null");
		CHECK(fds[3].starts_with("pipe:"));
		CHECK(fds[4].starts_with("socket:"));
		for (const auto &[fd, target] : fds)
			if (fd > 4)
				CHECK_MESSAGE(target.find("pipe:") != 0, "fd " << fd << " -> " << target);
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(wait_until([&] { return sb.hook_processes().empty(); }, 5000));
	}

	TEST_CASE("the watcher outlives the settler's alarm: a vCPU plugged 24 s after poststart is placed")
	{
		// The settler's alarm is settle_timeout_ms + the stage bound (20 s): with 1 s here, 21 s.
		// Every watcher used to die of it (SIGALRM), however long its VMM ran.
		Sandbox sb("outlive");
		sb.configure(R"("settle_timeout_ms":1000)");
		sb.start_test_vmm({"--vcpus", "2", "--hotplug-ms", "24000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto watcher = sb.watcher();
		REQUIRE(watcher);
		vmmcg::ProcessRef ref = *watcher;
		std::this_thread::sleep_for(std::chrono::seconds(23));
		CHECK(vmmcg::ProcFs().alive(ref));
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 3; }, 1000 + 10000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a hot-plugged vCPU whose KVM fd comes seconds after its thread is placed once it has it")
	{
		// The thread's event finds it unproven (three vCPU-named threads, two vCPU fds): nothing
		// moves. Opening the fd is no thread event: only the retry on the watcher's tick places it.
		Sandbox sb("hotplug-late-fd");
		sb.start_test_vmm({"--vcpus", "2", "--hotplug-ms", "2000", "--hotplug-fd-delay-ms", "3000"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto named_vcpus = [&] {
			std::size_t named = 0;
			for (const auto &t : sb.threads())
				named += is_vcpu_name(t.name);
			return named;
		};
		// Settled before the hotplug (as on any but a badly loaded machine): while the fd has not
		// come, the record keeps the two proven vCPUs (an unproven pass moved nothing and knows no
		// vCPU).
		if (named_vcpus() == 2 && sb.record()["vcpus"].size() == 2) {
			REQUIRE(wait_until([&] { return named_vcpus() == 3; }, 10000));
			std::this_thread::sleep_for(std::chrono::milliseconds(1000));
			CHECK(sb.record()["vcpus"].size() == 2);
		} else {
			MESSAGE("the settler ended after the hotplug: the unproven interval was not seen");
		}
		auto placed = [&] {
			std::size_t vcpus = 0;
			for (const auto &t : sb.threads()) {
				vcpus += is_vcpu_name(t.name);
				if (!on_its_side(sb, t))
					return false;
			}
			return vcpus == 3;
		};
		CHECK(wait_until(placed, 3000 + 10000));
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 3; }, 5000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("real QEMU/KVM: a vCPU added over QMP device_add reaches S by itself, KVM's worker stays "
		  "in O")
	{
		std::string qemu = "/usr/bin/qemu-system-x86_64";
		REQUIRE_MESSAGE(std::filesystem::exists(qemu), "qemu-system-x86_64 is not installed");
		REQUIRE_MESSAGE(::access("/dev/kvm", R_OK | W_OK) == 0, "no usable /dev/kvm");
		Sandbox sb("qemu-hotplug");
		std::string socket = "/tmp/" + sb.id() + ".qmp";
		std::filesystem::remove(socket);
		sb.configure(R"("vmm_names":["qemu-system-*"])");
		// No guest kernel: the vCPU threads run KVM_RUN all the same (the firmware), which is what
		// the hooks see.
		sb.start({qemu, "-accel", "kvm", "-smp", "1,maxcpus=2", "-m", "128", "-name",
			  "vmmcg,debug-threads=on", "-nographic", "-nodefaults", "-no-user-config",
			  "-display", "none", "-qmp", "unix:" + socket + ",server=on,wait=off"});
		struct RemoveSocket {
			std::string path;
			~RemoveSocket() { std::filesystem::remove(path); }
		} remove_socket{socket};
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		REQUIRE_FALSE(sb.record()["watcher"].is_null());
		auto all_placed = [&](std::size_t vcpus_wanted) {
			std::size_t vcpus = 0;
			for (const auto &t : sb.threads()) {
				vcpus += is_vcpu_name(t.name);
				if (!on_its_side(sb, t))
					return false;
			}
			return vcpus == vcpus_wanted;
		};
		// KVM's nx-lpage recovery worker is forked by the vCPU thread (in S) at its first KVM_RUN,
		// maybe after the settler ended: the watcher moves it to O.
		CHECK(wait_until([&] { return all_placed(1); }, 10000));

		QmpClient qmp(socket);
		json cpus = qmp.call("query-hotpluggable-cpus");
		REQUIRE_MESSAGE(cpus.contains("return"), cpus.dump());
		json slot;
		for (const auto &cpu : cpus["return"])
			if (!cpu.contains("qom-path"))
				slot = cpu;
		REQUIRE_MESSAGE(slot.is_object(), "no free CPU slot: " << cpus.dump());
		json arguments = slot["props"];
		arguments["driver"] = slot["type"];
		arguments["id"] = "vmmcg-hotplugged";
		// From the request: QEMU answers once the new vCPU thread has made its KVM fd, by which time
		// the watcher may have had its event.
		auto plugged_at = std::chrono::steady_clock::now();
		json added = qmp.call("device_add", arguments);
		auto answered = std::chrono::duration_cast<std::chrono::milliseconds>(
			std::chrono::steady_clock::now() - plugged_at);
		REQUIRE_MESSAGE(added.contains("return"), added.dump());

		// The new "CPU 1/KVM" is made by QEMU's main thread, in O; the watcher moves it to S.
		auto new_vcpu_in_s = [&] {
			for (const auto &t : sb.threads())
				if (t.name == "CPU 1/KVM" && on_its_side(sb, t))
					return true;
			return false;
		};
		bool moved = wait_until(new_vcpu_in_s, 10000);
		auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
			std::chrono::steady_clock::now() - plugged_at);
		MESSAGE("QMP device_add to CPU 1/KVM in S (the watcher, no command): "
			<< took.count() << " ms (QEMU answered after " << answered.count() << " ms)");
		CHECK(moved);
		// Then everything on its side, the worker (when this kernel makes one a thread of QEMU) in O.
		CHECK(wait_until([&] { return all_placed(2); }, 10000));
		bool worker = false;
		for (const auto &t : sb.threads())
			if (t.name.starts_with("kvm-nx-lpage")) {
				worker = true;
				INFO("KVM's worker " << t.tid);
				CHECK(t.where.at("cpu") == sb.overhead_path());
			}
		if (!worker)
			MESSAGE("no kvm-nx-lpage-re thread in QEMU here (the kernel makes it elsewhere)");
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 2; }, 5000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}

	TEST_CASE("a vCPU hot-plugged after placement is placed within a second, with no command")
	{
		Sandbox sb("hotplug");
		sb.start_test_vmm({"--vcpus", "2", "--hotplug-ms", "1500"});
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 10000));
		auto record = sb.record();
		REQUIRE_FALSE(record["watcher"].is_null());
		// The new vCPU is made by the main thread, in O: the watcher moves it to S.
		auto placed = [&] {
			std::size_t vcpus = 0;
			for (const auto &t : sb.threads()) {
				if (!is_vcpu_name(t.name))
					continue;
				++vcpus;
				for (const auto &c : Sandbox::cpu_controllers())
					if (t.where.at(c) != sb.sandbox_path())
						return false;
			}
			return vcpus == 3;
		};
		// Placed by the event of its creation, or by the 1 s tick at the latest; the bound is
		// generous because the watcher runs at idle priority and CI's machine is loaded (how fast:
		// the value benchmark's figures).
		CHECK(wait_until(placed, 1500 + 10000));
		CHECK(wait_until([&] { return sb.record()["vcpus"].size() == 3; }, 5000));
		sb.kill_vmm();
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
	}
}
