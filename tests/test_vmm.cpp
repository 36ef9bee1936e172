// A stand-in for a VMM: one process whose threads are named like a real VMM's, so the hooks can be
// exercised on real threads in real cgroups without booting a guest.
//
//   test-vmm [--vcpus N] [--io-threads N] [--style qemu-kvm|qemu-tcg|cloud-hypervisor|firecracker]
//            [--vcpu-delay-ms MS] [--spin] [--churn-vcpus] [--ready-file PATH] [--no-kvm] [--hotplug-ms MS]
//
// With --hotplug-ms, the main thread makes one more vCPU (its KVM fd and its thread) after that delay, as
// QEMU does on a QMP device_add of a CPU.
//
// Like a real KVM VMM, it holds a VM fd and one vCPU fd per vCPU thread (KVM_CREATE_VM, KVM_CREATE_VCPU on
// /dev/kvm), the proof the hooks ask for by default; --no-kvm leaves them out (an impostor named like a
// VMM, or a TCG one). Without a usable /dev/kvm it exits 3 unless --no-kvm is given.
// The main thread stays unnamed (it is "the VMM"), I/O threads are named "IO iothreadN" and vCPU threads
// are named after --style. With --vcpu-delay-ms the vCPU threads appear only after that delay, as with a
// VMM that creates its vCPUs after it has set up the machine. With --ready-file, the file is created once
// every thread exists. With --churn-vcpus a thread named "IO churn" keeps creating short-lived threads named
// "CPU 9/KVM" (each lives about a millisecond), so that threads come and go while the hooks move them.
// The process runs until it is killed.
#include <fcntl.h>
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
	int hotplug_ms = 0; // one more vCPU thread (and its KVM fd), made by the main thread after this delay
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
		if (i + 1 >= argc && arg != "--spin" && arg != "--churn-vcpus" && arg != "--no-kvm")
			usage("missing value");
		if (arg == "--vcpus")
			options.vcpus = parse_count(argv[++i], 1024);
		else if (arg == "--io-threads")
			options.io_threads = parse_count(argv[++i], 64);
		else if (arg == "--style")
			options.style = argv[++i];
		else if (arg == "--vcpu-delay-ms")
			options.vcpu_delay_ms = parse_count(argv[++i], 600000);
		else if (arg == "--hotplug-ms")
			options.hotplug_ms = parse_count(argv[++i], 600000);
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

void run_thread(std::string name, bool spin)
{
	pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
	for (;;) {
		if (spin) {
			// Burn CPU in short bursts: a relaxed atomic keeps the loop from being optimised
			// away.
			static std::atomic<unsigned> sink;
			for (int i = 0; i < 1000000; ++i)
				sink.fetch_add(1, std::memory_order_relaxed);
			std::this_thread::yield();
		} else {
			pause();
		}
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
	std::vector<std::thread> threads;
	for (int i = 0; i < options.io_threads; ++i)
		threads.emplace_back(run_thread, "IO iothread" + std::to_string(i), false);
	if (options.vcpu_delay_ms > 0)
		std::this_thread::sleep_for(std::chrono::milliseconds(options.vcpu_delay_ms));
	if (options.kvm) {
		std::vector<int> indexes;
		for (int i = 0; i < options.vcpus; ++i)
			indexes.push_back(i);
		if (options.churn && options.vcpus <= 9)
			indexes.push_back(9); // the churned "CPU 9/KVM" threads
		create_kvm_vcpus(indexes);
	}
	for (int i = 0; i < options.vcpus; ++i)
		threads.emplace_back(run_thread, vcpu_name(options.style, i), options.spin);
	if (options.churn)
		threads.emplace_back(churn);
	if (!options.ready_file.empty())
		std::ofstream(options.ready_file) << getpid() << '\n';
	if (options.hotplug_ms > 0) {
		std::this_thread::sleep_for(std::chrono::milliseconds(options.hotplug_ms));
		if (options.kvm)
			create_kvm_vcpus({options.vcpus});
		threads.emplace_back(run_thread, vcpu_name(options.style, options.vcpus), options.spin);
	}
	for (;;)
		pause();
}
