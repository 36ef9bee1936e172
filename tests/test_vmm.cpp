// A stand-in for a VMM: one process whose threads are named like a real VMM's, so the hooks can be
// exercised on real threads in real cgroups without booting a guest.
//
//   test-vmm [--vcpus N] [--io-threads N] [--style qemu-kvm|qemu-tcg|cloud-hypervisor|firecracker]
//            [--vcpu-delay-ms MS] [--spin] [--spin-io] [--churn-vcpus] [--ready-file PATH] [--no-kvm]
//            [--kvm-vcpus N] [--fork-after-ms MS [--forks N]] [--exit-on-usr1] [--qmp-silent PATH]
//            [--hotplug-ms MS [--hotplug-fd-delay-ms MS]]
//
// With --hotplug-ms, the main thread makes one more vCPU (its KVM fd and its thread) after that delay, as
// QEMU does on a QMP device_add of a CPU. With --hotplug-fd-delay-ms the thread comes first and its KVM
// fd that much later: a vCPU-named thread the proof cannot accept yet, and no thread event when it can.
//
// Like a real KVM VMM, it holds a VM fd and one vCPU fd per vCPU thread (KVM_CREATE_VM, KVM_CREATE_VCPU on
// /dev/kvm), the proof the hooks ask for by default; --no-kvm leaves them out (an impostor named like a
// VMM, or a TCG one). Without a usable /dev/kvm it exits 3 unless --no-kvm is given.
// The main thread stays unnamed (it is "the VMM"), I/O threads are named "IO iothreadN" and vCPU threads
// are named after --style. With --vcpu-delay-ms the vCPU threads appear only after that delay, as with a
// VMM that creates its vCPUs after it has set up the machine. With --ready-file, the file is created once
// every thread exists. With --churn-vcpus a thread named "IO churn" keeps creating short-lived threads named
// "CPU 9/KVM" (each lives about a millisecond), so that threads come and go while the hooks move them.
// The hostile stand-ins (tests/integration/test_hostile.cpp): --kvm-vcpus N holds only N vCPU fds (fewer
// than the vCPU-named threads: a faked proof); --spin-io makes the I/O threads spin (the overhead side);
// --fork-after-ms forks --forks child processes (1 by default) named "child" after that delay (each pauses
// until the VMM dies, and is reaped by the kernel); --exit-on-usr1 makes a vCPU thread exit when SIGUSR1 is
// sent to it (tgkill), so that its tid can be reused; --qmp-silent listens on a unix socket, accepts and
// never answers (a QMP peer that is the VMM itself). Up to 8192 vCPU and I/O threads, each with a small
// stack. The process runs until it is killed.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
	int vcpus = 4;
	int io_threads = 2;
	std::string style = "qemu-kvm";
	int vcpu_delay_ms = 0;
	bool spin = false;
	bool churn = false;
	bool kvm = true;
	int kvm_vcpus = -1; // vCPU fds: -1 for one per vCPU thread
	bool spin_io = false;
	int fork_after_ms = -1;
	int forks = 1;
	bool exit_on_usr1 = false;
	std::string qmp_silent;
	int hotplug_ms = 0; // one more vCPU thread (and its KVM fd), made by the main thread after this delay
	int hotplug_fd_delay_ms = 0; // the hot-plugged vCPU's KVM fd comes this long after its thread
	std::string ready_file;
};

[[noreturn]] void usage(const char *why)
{
	std::fprintf(stderr, "test-vmm: %s\n", why);
	std::exit(2);
}

int parse_count(const char *text, int max)
{
	char *end = nullptr;
	long value = std::strtol(text, &end, 10);
	if (*text == '\0' || *end != '\0' || value < 0 || value > max)
		usage("bad number");
	return static_cast<int>(value);
}

Options parse(int argc, char **argv)
{
	Options options;
	for (int i = 1; i < argc; ++i) {
		std::string arg = argv[i];
		bool flag = arg == "--spin" || arg == "--churn-vcpus" || arg == "--no-kvm" ||
			    arg == "--spin-io" || arg == "--exit-on-usr1";
		if (i + 1 >= argc && !flag)
			usage("missing value");
		if (arg == "--vcpus")
			options.vcpus = parse_count(argv[++i], 8192);
		else if (arg == "--io-threads")
			options.io_threads = parse_count(argv[++i], 8192);
		else if (arg == "--kvm-vcpus")
			options.kvm_vcpus = parse_count(argv[++i], 8192);
		else if (arg == "--spin-io")
			options.spin_io = true;
		else if (arg == "--fork-after-ms")
			options.fork_after_ms = parse_count(argv[++i], 600000);
		else if (arg == "--forks")
			options.forks = parse_count(argv[++i], 8192);
		else if (arg == "--exit-on-usr1")
			options.exit_on_usr1 = true;
		else if (arg == "--hotplug-ms")
			options.hotplug_ms = parse_count(argv[++i], 600000);
		else if (arg == "--hotplug-fd-delay-ms")
			options.hotplug_fd_delay_ms = parse_count(argv[++i], 600000);
		else if (arg == "--qmp-silent")
			options.qmp_silent = argv[++i];
		else if (arg == "--style")
			options.style = argv[++i];
		else if (arg == "--vcpu-delay-ms")
			options.vcpu_delay_ms = parse_count(argv[++i], 600000);
		else if (arg == "--ready-file")
			options.ready_file = argv[++i];
		else if (arg == "--spin")
			options.spin = true;
		else if (arg == "--churn-vcpus")
			options.churn = true;
		else if (arg == "--no-kvm")
			options.kvm = false;
		else
			usage("unknown option");
	}
	return options;
}

std::string vcpu_name(const std::string &style, int index)
{
	if (style == "qemu-kvm")
		return "CPU " + std::to_string(index) + "/KVM";
	if (style == "qemu-tcg")
		return "CPU " + std::to_string(index) + "/TCG";
	if (style == "cloud-hypervisor")
		return "vcpu" + std::to_string(index);
	if (style == "firecracker")
		return "fc_vcpu " + std::to_string(index);
	usage("unknown style");
}

// A KVM VM with vCPU fds for these indexes: what /proc/<pid>/fd of a real KVM VMM shows. The fds stay open
// for the life of the process.
void create_kvm_vcpus(const std::vector<int> &indexes)
{
	static int vm = -1;
	if (vm < 0) {
		int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
		vm = kvm < 0 ? -1 : ::ioctl(kvm, KVM_CREATE_VM, 0);
		if (vm < 0) {
			std::perror("test-vmm: KVM_CREATE_VM (use --no-kvm without /dev/kvm)");
			std::exit(3);
		}
	}
	for (int index : indexes)
		if (::ioctl(vm, KVM_CREATE_VCPU, index) < 0) {
			std::perror("test-vmm: KVM_CREATE_VCPU");
			std::exit(3);
		}
}

thread_local volatile sig_atomic_t exit_requested = 0;

void on_usr1(int)
{
	exit_requested = 1;
}

struct ThreadSpec {
	std::string name;
	bool spin;
};

void *run_thread(void *arg)
{
	std::unique_ptr<ThreadSpec> spec(static_cast<ThreadSpec *>(arg));
	pthread_setname_np(pthread_self(), spec->name.substr(0, 15).c_str());
	while (!exit_requested) {
		if (spec->spin) {
			// Burn CPU in short bursts: a relaxed atomic keeps the loop from being optimised
			// away.
			static std::atomic<unsigned> sink;
			for (int i = 0; i < 1000000; ++i)
				sink.fetch_add(1, std::memory_order_relaxed);
			sched_yield();
		} else {
			pause();
		}
	}
	return nullptr;
}

// With a small stack: thousands of them stay cheap.
void start_thread(std::string name, bool spin)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_t thread;
	std::string comm = name.substr(0, 15);
	auto *spec = new ThreadSpec{std::move(name), spin};
	if (pthread_create(&thread, &attr, run_thread, spec) != 0) {
		std::perror("test-vmm: pthread_create");
		std::exit(4);
	}
	// Named before the ready file is written, not whenever the thread first runs. Never joined: a
	// thread that exits (--exit-on-usr1) frees its tid all the same.
	pthread_setname_np(thread, comm.c_str());
	pthread_attr_destroy(&attr);
}

// A peer that accepts and never says a word, served by this process (SO_PEERCRED names it).
void serve_silently(std::string path)
{
	pthread_setname_np(pthread_self(), "IO qmp");
	int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr {};
	addr.sun_family = AF_UNIX;
	std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
	::unlink(path.c_str());
	if (fd < 0 || ::bind(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0 ||
	    ::listen(fd, 16) != 0) {
		std::perror("test-vmm: --qmp-silent");
		std::exit(5);
	}
	std::vector<int> clients;
	for (;;) {
		int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
		if (client >= 0)
			clients.push_back(client); // kept open, never written to
	}
}

void churn()
{
	pthread_setname_np(pthread_self(), "IO churn");
	for (;;) {
		std::thread short_lived([] {
			pthread_setname_np(pthread_self(), "CPU 9/KVM");
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		});
		short_lived.join();
	}
}

} // namespace

int main(int argc, char **argv)
{
	Options options = parse(argc, argv);
	// Children (--fork-after-ms) are reaped by the kernel: a pid they free is free at once.
	struct sigaction chld {};
	chld.sa_handler = SIG_IGN;
	chld.sa_flags = SA_NOCLDWAIT;
	::sigaction(SIGCHLD, &chld, nullptr);
	if (options.exit_on_usr1) {
		struct sigaction usr1 {};
		usr1.sa_handler = on_usr1;
		::sigaction(SIGUSR1, &usr1, nullptr);
	}
	std::vector<std::thread> threads;
	for (int i = 0; i < options.io_threads; ++i)
		start_thread("IO iothread" + std::to_string(i), options.spin_io);
	if (!options.qmp_silent.empty())
		threads.emplace_back(serve_silently, options.qmp_silent);
	if (options.vcpu_delay_ms > 0)
		std::this_thread::sleep_for(std::chrono::milliseconds(options.vcpu_delay_ms));
	if (options.kvm) {
		std::vector<int> indexes;
		int fds = options.kvm_vcpus < 0 ? options.vcpus : options.kvm_vcpus;
		for (int i = 0; i < fds; ++i)
			indexes.push_back(i);
		if (options.churn && options.vcpus <= 9)
			indexes.push_back(9); // the churned "CPU 9/KVM" threads
		create_kvm_vcpus(indexes);
	}
	for (int i = 0; i < options.vcpus; ++i)
		start_thread(vcpu_name(options.style, i), options.spin);
	if (options.churn)
		threads.emplace_back(churn);
	if (!options.ready_file.empty())
		std::ofstream(options.ready_file) << getpid() << '\n';
	if (options.hotplug_ms > 0) {
		std::this_thread::sleep_for(std::chrono::milliseconds(options.hotplug_ms));
		if (options.kvm && options.hotplug_fd_delay_ms == 0)
			create_kvm_vcpus({options.vcpus});
		start_thread(vcpu_name(options.style, options.vcpus), options.spin);
		if (options.kvm && options.hotplug_fd_delay_ms > 0) {
			std::this_thread::sleep_for(std::chrono::milliseconds(options.hotplug_fd_delay_ms));
			create_kvm_vcpus({options.vcpus});
		}
	}
	if (options.fork_after_ms >= 0) {
		std::this_thread::sleep_for(std::chrono::milliseconds(options.fork_after_ms));
		for (int i = 0; i < options.forks; ++i) {
			pid_t child = ::fork();
			if (child == 0) {
				::prctl(PR_SET_PDEATHSIG, SIGKILL);
				::prctl(PR_SET_NAME, "child");
				for (;;)
					pause();
			}
		}
	}
	for (;;)
		pause();
}
