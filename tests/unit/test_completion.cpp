#include "completion.h"

#include <chrono>

#include <doctest/doctest.h>

using namespace vmmcg;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::nanoseconds tick = 10ms;

CompletionRule rule()
{
	CompletionRule r;
	r.quiet = 100ms;
	r.tick = tick;
	return r;
}

// A pass that placed 4 vCPUs whose youngest thread started at tick 100 (1.0 s after boot), read at `at`.
PassSummary pass_at(std::chrono::nanoseconds at)
{
	PassSummary pass;
	pass.vcpus = 4;
	pass.same_threads = true;
	pass.youngest = 100;
	pass.read_at = at;
	return pass;
}

} // namespace

TEST_SUITE("completion")
{
	TEST_CASE("quiet: complete once the youngest thread was quiet_ms old when the pass read the threads")
	{
		// Born in tick 100 means at most 1.01 s after boot: quiet from 1.11 s.
		CHECK(rule().complete(pass_at(1110ms)));
		CHECK(rule().complete(pass_at(5s)));
		CHECK_FALSE(rule().complete(pass_at(1109ms)));
		CHECK_FALSE(rule().complete(pass_at(1000ms)));
	}

	TEST_CASE("wait: how long until a young VMM is quiet, measured from now")
	{
		PassSummary young = pass_at(1050ms);
		REQUIRE(rule().wait(young, 1060ms));
		CHECK(*rule().wait(young, 1060ms) == 50ms);
		// Quiet by now although not when the pass read the threads: no wait, but not complete either:
		// another pass must read names that were set long before.
		CHECK(*rule().wait(young, 2s) == 0ns);
		CHECK_FALSE(rule().complete(young));
		// Complete: nothing to wait for.
		CHECK_FALSE(rule().wait(pass_at(2s), 2s));
	}

	TEST_CASE("no vCPU placed, a retry, or threads that changed: never complete, no quiet wait")
	{
		PassSummary none = pass_at(5s);
		none.vcpus = 0;
		CHECK_FALSE(rule().may_complete(none));
		CHECK_FALSE(rule().complete(none));
		CHECK_FALSE(rule().wait(none, 5s));

		PassSummary retry = pass_at(5s);
		retry.retry = true;
		CHECK_FALSE(rule().may_complete(retry));
		CHECK_FALSE(rule().complete(retry));
		CHECK_FALSE(rule().wait(retry, 5s));

		PassSummary changed = pass_at(5s);
		changed.same_threads = false;
		CHECK(rule().may_complete(changed)); // the readdir is worth paying for
		CHECK_FALSE(rule().complete(changed));
		CHECK_FALSE(rule().wait(changed, 5s));
	}

	TEST_CASE("QMP: complete as soon as every listed vCPU is placed, however young the VMM")
	{
		PassSummary young = pass_at(1000ms);
		young.qmp_vcpus = 4;
		CHECK(rule().complete(young));
		young.qmp_vcpus = 5; // one vCPU QMP lists is not placed yet: the quiet rule still decides
		CHECK_FALSE(rule().complete(young));
		CHECK(rule().wait(young, 1000ms));
		young.read_at = 2s;
		CHECK(rule().complete(young));
		young.same_threads = false;
		young.qmp_vcpus = 4;
		CHECK_FALSE(rule().complete(young));
	}

	TEST_CASE("a start time is rounded down to a tick: the thread is taken as one tick younger")
	{
		CompletionRule r = rule();
		PassSummary pass = pass_at(0ns);
		pass.youngest = 0; // born in the first tick after boot
		pass.read_at = 110ms;
		CHECK(r.complete(pass));
		pass.read_at = 109ms;
		CHECK_FALSE(r.complete(pass));
		r.tick = 1ms; // another USER_HZ
		pass.read_at = 101ms;
		CHECK(r.complete(pass));
	}
}
