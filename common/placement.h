// The placement loop: finds the VMM from the container's process, asks for its vCPU threads (QMP or names),
// runs the backend's passes until the placement is complete (completion.h) or the deadline passes.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend.h"
#include "completion.h"
#include "config.h"
#include "discovery.h"
#include "procfs.h"
#include "record.h"

namespace vmmcg {

struct SettleResult {
	bool complete = false;       // VMM found, vCPUs placed and verified, no thread created for quiet_ms
	bool container_gone = false; // the container's process exited before a VMM showed up
	std::optional<ProcessRef> vmm;
	std::vector<pid_t> vcpus;
	std::string vcpu_source; // "qmp" or "thread-names"
	std::string refused;     // why the VMM will never be placed (too many threads): no settler for it
	// The last pass found vCPU-named threads that KVM's fds did not prove (yet: a VMM may name a thread
	// before it opens its vCPU fd), so it moved none of them.
	bool unproven = false;
};

// What the loop needs of the configuration, by value.
struct PlacementOptions {
	std::vector<std::string> vmm_names;
	unsigned vmm_search_depth = 4;
	std::vector<std::string> vcpu_thread_patterns;
	std::optional<std::string> qmp_socket;
	std::chrono::milliseconds qmp_timeout{1000};
	VcpuProof vcpu_proof = VcpuProof::kvm;
	std::size_t max_threads = 4096;
	CompletionRule rule;

	static PlacementOptions from(const Config &config);
};

class PlacementLoop
{
public:
	PlacementLoop(Backend &backend, ProcFs proc, PlacementOptions options, ProcessRef container)
		: backend_(backend), proc_(std::move(proc)), options_(std::move(options)),
		  container_(container)
	{}

	// Passes, with a backoff (5 ms doubling to 250 ms) or one sleep until a young VMM is quiet, until the
	// placement is complete, the VMM or the container's process exited, or the deadline.
	// `sleep` waits at most the given time; the watcher's returns early on a process event.
	using Sleep = std::function<void(std::chrono::nanoseconds)>;
	SettleResult run(std::chrono::steady_clock::time_point deadline, const Sleep &sleep = {});
	// A VMM found earlier (the watcher's): no search from the container's process, which may be gone.
	void set_vmm(const ProcessRef &vmm) { result_.vmm = vmm; }

private:
	enum class Step { again, done };
	Step step(std::optional<std::chrono::nanoseconds> &wait,
		  std::chrono::steady_clock::time_point deadline);
	// Looks for the VMM; done when the container's process exited without one.
	bool find_vmm();
	// QMP answers once the VMM is up: a few tries, then thread names are the source. Never past deadline.
	void ask_qmp(std::chrono::steady_clock::time_point deadline);
	Step pass(std::optional<std::chrono::nanoseconds> &wait,
		  std::chrono::steady_clock::time_point deadline);
	// The VMM's threads with their vCPUs marked (QMP, names) and proven; empty when there are too many.
	std::vector<ThreadInfo> threads(const TaskDir &tasks, std::error_code &ec);

	Backend &backend_;
	ProcFs proc_;
	PlacementOptions options_;
	ProcessRef container_;
	SettleResult result_;
	std::optional<std::vector<pid_t>> qmp_vcpus_;
	std::optional<KvmFds> kvm_fds_;
	unsigned qmp_tries_ = 0;
};

// One line at the end of a placement: placed, not yet, or why nothing moved.
void log_settled(const SettleResult &result, const char *who);

// Stores the placement in the record; once vCPU threads are in place, lifts what still binds the overhead
// (v2: S's cpu.max; backend.h).
void store_placement(Record &record, Backend &backend, const SettleResult &result);

} // namespace vmmcg
