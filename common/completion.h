// When a placement counts as complete: the subtlest rule of the hooks, kept pure so that unit tests reach
// every branch of it. A VMM creates its vCPU threads over some milliseconds after it starts, and names
// them after creating them, so one pass that placed some vCPUs proves nothing by itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace vmmcg {

// What the rule looks at, from one placement pass.
struct PassSummary {
	bool retry = false;    // a move the kernel refused for now: another pass is needed anyway
	std::size_t vcpus = 0; // vCPU threads the pass found and placed
	// A readdir right after the pass found exactly the threads it placed: none came or went meanwhile.
	bool same_threads = false;
	std::optional<std::size_t> qmp_vcpus; // how many vCPUs QMP listed, when QMP is the source
	std::uint64_t youngest = 0;           // the latest start time among the threads, in clock ticks
	std::chrono::nanoseconds read_at{};   // boot time when the pass listed the threads
};

struct CompletionRule {
	std::chrono::milliseconds quiet{100};      // settle_quiet_ms
	std::chrono::nanoseconds tick{10'000'000}; // one clock tick of /proc start times

	// Whether a pass could count as complete, before the readdir that sets same_threads is paid for.
	bool may_complete(const PassSummary &pass) const;
	// Complete when the pass placed vCPUs with no retry, the readdir saw the same threads, and either QMP
	// listed exactly those vCPUs (QEMU answers QMP only after it created them all) or the youngest thread
	// was at least `quiet` old when the pass read the threads, so every name it matched was set long
	// before.
	bool complete(const PassSummary &pass) const;
	// When the pass could not be complete only because the VMM was too young: how long from `now` until
	// it will be quiet (zero if it already is). nullopt when another cause stands in the way.
	std::optional<std::chrono::nanoseconds> wait(const PassSummary &pass,
						     std::chrono::nanoseconds now) const;

private:
	// How long after `at` the youngest thread is `quiet` old; zero or less when it already was. A start
	// time is a whole tick rounded down, so the thread is taken as one tick younger than it may be.
	std::chrono::nanoseconds until_quiet(std::uint64_t youngest, std::chrono::nanoseconds at) const;
};

} // namespace vmmcg
