#include "backend.h"
#include "cgroup_v2.h"

#include <doctest/doctest.h>

using namespace vmmcg;

TEST_SUITE("cgroup_v2")
{
	TEST_CASE("shares_to_weight: runc's and crun's conversion, at the ends of the ranges and between")
	{
		CHECK(cgroup_v2::shares_to_weight(0) == 0); // unset stays unset
		CHECK(cgroup_v2::shares_to_weight(2) == 1);
		CHECK(cgroup_v2::shares_to_weight(262144) == 10000);
		CHECK(cgroup_v2::shares_to_weight(1024) == 39); // the v1 default: 1 + 1022 * 9999 / 262142
		CHECK(cgroup_v2::shares_to_weight(512) == 20);
		for (std::uint64_t shares = 2; shares <= 262144; shares += 997) {
			CAPTURE(shares);
			CHECK(cgroup_v2::shares_to_weight(shares) >= 1);
			CHECK(cgroup_v2::shares_to_weight(shares) <= 10000);
			CHECK(cgroup_v2::shares_to_weight(shares) <=
			      cgroup_v2::shares_to_weight(shares + 997));
		}
	}
}

TEST_SUITE("teardown")
{
	TEST_CASE("Teardown::summary: what was removed, what was removed already, one line")
	{
		Teardown both;
		both.removed = {"S/overhead"};
		both.gone = {"S/vcpu"};
		CHECK(both.summary() == "removed S/overhead; S/vcpu was removed already");
		Teardown gone;
		gone.gone = {"S/overhead", "S/vcpu"};
		CHECK(gone.summary() == "S/overhead and S/vcpu were removed already");
		Teardown three;
		three.removed = {"O in cpu", "O in cpuacct", "O in cpuset"};
		CHECK(three.summary() == "removed O in cpu, O in cpuacct and O in cpuset");
		CHECK(Teardown().summary() == "nothing to remove");
	}
}
