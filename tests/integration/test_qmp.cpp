// vCPU discovery over QMP against real QEMU and against hostile peers.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "scope_exit.h"

namespace fs = std::filesystem;
using namespace vmmcg::test;

namespace {

// The VMM (found below the container's process) and its threads, judged by the record's vCPU ids.
void check_split_by_record(const Sandbox &sb, pid_t vmm, std::size_t expected_vcpus)
{
	auto record = sb.record();
	std::set<pid_t> vcpus;
	for (pid_t tid : record["vcpus"])
		vcpus.insert(tid);
	CHECK(vcpus.size() == expected_vcpus);
	CHECK(record["vmm"]["pid"] == vmm);
	std::size_t seen = 0;
	for (const auto &entry : fs::directory_iterator("/proc/" + std::to_string(vmm) + "/task")) {
		pid_t tid = std::stoi(entry.path().filename());
		std::ifstream in(entry.path() / "cgroup");
		std::string line, cpu_path;
		while (std::getline(in, line))
			if (line.find(":cpu:") != std::string::npos)
				cpu_path = line.substr(line.rfind(':') + 1);
		INFO("thread " << tid);
		CHECK(cpu_path == (vcpus.count(tid) ? sb.sandbox_path() : sb.overhead_path()));
		seen += vcpus.count(tid);
	}
	CHECK(seen == expected_vcpus);
}

std::vector<std::string> qemu_args(const std::string &qmp)
{
	bool kvm = ::access("/dev/kvm", R_OK | W_OK) == 0;
	// No debug-threads: every thread is named after the program, only QMP can tell the vCPUs.
	return {"/usr/bin/qemu-system-x86_64",
		"-accel",
		kvm ? "kvm" : "tcg",
		"-smp",
		"4",
		"-m",
		"128",
		"-nographic",
		"-nodefaults",
		"-no-user-config",
		"-display",
		"none",
		"-qmp",
		"unix:" + qmp + ",server=on,wait=off"};
}

// A peer on a unix socket that misbehaves in a chosen way, for as long as the test lives.
class FakeQmp
{
public:
	enum class Kind { garbage, flood, silent, error };
	FakeQmp(const std::string &path, Kind kind) : path_(path), kind_(kind)
	{
		fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un addr {};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
		REQUIRE(::listen(fd_, 4) == 0);
		thread_ = std::thread([this] { serve(); });
	}
	~FakeQmp()
	{
		stop_ = true;
		::shutdown(fd_, SHUT_RDWR);
		thread_.join();
		::close(fd_);
		::unlink(path_.c_str());
	}

private:
	void serve()
	{
		while (!stop_) {
			int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (client < 0)
				return;
			std::string chunk(65536, 'x');
			switch (kind_) {
			case Kind::garbage:
				(void)!::write(client, "\x01\x02 not json at all\n", 19);
				break;
			case Kind::flood: // no newline ever: the reader must stop at its size limit
				for (int i = 0; i < 64 && !stop_; ++i)
					if (::send(client, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0)
						break;
				break;
			case Kind::silent: // accepts and never says a word
				std::this_thread::sleep_for(std::chrono::milliseconds(3000));
				break;
			case Kind::error: {
				std::string hello = R"({"QMP":{"version":{},"capabilities":[]}})"
						    "\n";
				(void)!::write(client, hello.data(), hello.size());
				std::string err = R"({"error":{"class":"GenericError","desc":"nope"}})"
						  "\n";
				(void)!::write(client, err.data(), err.size());
				break;
			}
			}
			::close(client);
		}
	}
	std::string path_;
	Kind kind_;
	int fd_ = -1;
	std::atomic<bool> stop_{false};
	std::thread thread_;
};

void allow_qmp(Sandbox &sb, const std::string &socket)
{
	sb.configure(R"("allowed_annotations":["qmp-socket"],"qmp_timeout_ms":500)");
	sb.annotate(R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.qmp-socket":")" + socket +
		    "\"}");
}

} // namespace

TEST_SUITE("integration-qmp")
{
	TEST_CASE("QMP finds the vCPU threads of a real QEMU without debug-threads")
	{
		Sandbox sb("qmp");
		std::string socket = "/tmp/" + sb.id() + ".qmp";
		allow_qmp(sb, socket);
		pid_t qemu = sb.start(qemu_args(socket));
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		REQUIRE_MESSAGE(started.status == 0, started.err);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		CHECK(sb.record()["vcpu_source"] == "qmp");
		check_split_by_record(sb, qemu, 4);
		CHECK(sb.poststop().status == 0);
		CHECK(sb.overhead_gone());
		::unlink(socket.c_str());
	}

	TEST_CASE("QMP thread ids of a VMM in its own pid namespace are mapped to host ids")
	{
		Sandbox sb("qmpns");
		std::string socket = "/tmp/" + sb.id() + ".qmp";
		allow_qmp(sb, socket);
		std::vector<std::string> args = {"/usr/bin/unshare", "--pid", "--fork", "--kill-child"};
		for (const auto &a : qemu_args(socket))
			args.push_back(a);
		sb.start(args);
		REQUIRE(sb.create_runtime().status == 0);
		REQUIRE(sb.poststart().status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		auto record = sb.record();
		CHECK(record["vcpu_source"] == "qmp");
		pid_t qemu = record["vmm"]["pid"];
		CHECK(qemu != sb.vmm()); // the child of unshare, pid 1 in its namespace
		std::ifstream status("/proc/" + std::to_string(qemu) + "/status");
		std::string text((std::istreambuf_iterator<char>(status)), {});
		CHECK(text.find("NSpid:\t" + std::to_string(qemu) + "\t1") != std::string::npos);
		check_split_by_record(sb, qemu, 4);
		CHECK(sb.poststop().status == 0);
		::unlink(socket.c_str());
	}

	TEST_CASE("a QMP peer that sends garbage, floods, errs or never answers: thread names take over")
	{
		for (auto kind : {FakeQmp::Kind::garbage, FakeQmp::Kind::flood, FakeQmp::Kind::silent,
				  FakeQmp::Kind::error}) {
			Sandbox sb("fakeqmp" + std::to_string(static_cast<int>(kind)));
			std::string socket = "/tmp/" + sb.id() + ".qmp";
			FakeQmp peer(socket, kind);
			allow_qmp(sb, socket);
			sb.start_test_vmm({"--vcpus", "3"});
			REQUIRE(sb.create_runtime().status == 0);
			HookRun started = sb.poststart();
			INFO("peer kind " << static_cast<int>(kind) << ": " << started.err);
			CHECK(started.status == 0);
			REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
			CHECK(sb.record()["vcpu_source"] == "thread-names");
			check_split_by_record(sb, sb.vmm(), 3);
			CHECK(sb.poststop().status == 0);
		}
	}

	TEST_CASE("a QMP socket path cannot leave the VMM's root: a planted symlink resolves inside it")
	{
		Sandbox sb("qmproot");
		// The VMM runs chrooted in a directory holding only itself and a symlink to a real
		// QMP-looking socket outside; resolved in the VMM's root, the symlink points at nothing.
		std::string root = "/tmp/" + sb.id() + "-root";
		vmmcg::ScopeExit remove_root([&] {
			std::error_code ec;
			fs::remove_all(root, ec); // also when a check below fails
		});
		fs::create_directories(root + "/run");
		fs::copy_file(build_path("tests/test-vmm"), root + "/test-vmm");
		std::string outside = "/tmp/" + sb.id() + "-outside.qmp";
		FakeQmp peer(outside, FakeQmp::Kind::error);
		fs::create_symlink(outside, root + "/run/qmp.sock");
		allow_qmp(sb, "/run/qmp.sock");
		// No /dev/kvm in the chroot: thread names are the proof here.
		sb.configure(
			R"("allowed_annotations":["qmp-socket"],"qmp_timeout_ms":500,"vcpu_proof":"names")");
		sb.start({"/usr/sbin/chroot", root, "/test-vmm", "--vcpus", "2", "--no-kvm"});
		REQUIRE(sb.create_runtime().status == 0);
		HookRun started = sb.poststart();
		CHECK(started.status == 0);
		REQUIRE(wait_until([&] { return sb.settled(); }, 20000));
		CHECK(sb.record()["vcpu_source"] == "thread-names");
		CHECK(sb.poststop().status == 0);
		sb.kill_vmm();
	}

	TEST_CASE("a qmp-socket annotation the node owner did not allow is refused")
	{
		Sandbox sb("qmpdeny");
		sb.annotate(
			R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.qmp-socket":"/tmp/x.qmp"})");
		sb.start_test_vmm({"--vcpus", "2"});
		HookRun created = sb.create_runtime();
		REQUIRE(created.status == 0);
		CHECK(created.err.find("io.vmm-cgroup-hooks.qmp-socket=/tmp/x.qmp refused") !=
		      std::string::npos);
		REQUIRE(sb.poststart().status == 0);
		CHECK(sb.record()["qmp_socket"].is_null());
		CHECK(sb.poststop().status == 0);
	}

	TEST_CASE("a qmp-socket annotation that is not a clean absolute path is bad input")
	{
		Sandbox sb("qmpbad");
		sb.configure(R"("allowed_annotations":["qmp-socket"])");
		sb.annotate(
			R"({"io.vmm-cgroup-hooks.enable":"true","io.vmm-cgroup-hooks.qmp-socket":"/run/../../etc/x"})");
		sb.start_test_vmm({"--vcpus", "1"});
		HookRun created = sb.create_runtime();
		CHECK(created.status == 2);
		CHECK(created.err.find("qmp-socket") != std::string::npos);
		CHECK(sb.overhead_gone());
	}
}
