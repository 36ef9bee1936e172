#include "host.h"

#include <string>

#include <doctest/doctest.h>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;

TEST_SUITE("host")
{
	TEST_CASE("parse_proc_cgroup: hybrid host")
	{
		ProcCgroups cgroups = parse_proc_cgroup("12:cpu,cpuacct:/a\n"
							"11:cpuset:/b\n"
							"10:memory:/machine.slice/libpod-1.scope\n"
							"2:pids:/c/d\n"
							"1:name=systemd:/x\n"
							"0::/y\n");
		CHECK(cgroups.size() == 7);
		CHECK(cgroups.at("cpu") == "/a");
		CHECK(cgroups.at("cpuacct") == "/a");
		CHECK(cgroups.at("cpuset") == "/b");
		CHECK(cgroups.at("memory") == "/machine.slice/libpod-1.scope");
		CHECK(cgroups.at("pids") == "/c/d");
		CHECK(cgroups.at("name=systemd") == "/x");
		CHECK(cgroups.at("") == "/y");
		CHECK_FALSE(cgroups.contains("systemd"));
	}

	TEST_CASE("parse_proc_cgroup: v1 host without a cgroup2 line, and no trailing newline")
	{
		ProcCgroups cgroups =
			parse_proc_cgroup("4:cpu,cpuacct:/k/abc\n3:cpuset:/\n1:name=systemd:/k");
		CHECK(cgroups.size() == 4);
		CHECK(cgroups.at("cpuset") == "/");
		CHECK(cgroups.at("name=systemd") == "/k");
		CHECK_FALSE(cgroups.contains(""));
	}

	TEST_CASE("parse_proc_cgroup: pure v2")
	{
		ProcCgroups cgroups = parse_proc_cgroup("0::/a/b\n");
		REQUIRE(cgroups.size() == 1);
		CHECK(cgroups.at("") == "/a/b");
		CHECK(parse_proc_cgroup("0::/\n").at("") == "/");
	}

	TEST_CASE("parse_proc_cgroup: blank lines and an empty file")
	{
		CHECK(parse_proc_cgroup("").empty());
		CHECK(parse_proc_cgroup("\n\n").empty());
		CHECK(parse_proc_cgroup("\n0::/a\n\n").at("") == "/a");
	}

	TEST_CASE("parse_proc_cgroup: a path with a colon keeps it")
	{
		CHECK(parse_proc_cgroup("0::/a:b\n").at("") == "/a:b");
		CHECK(parse_proc_cgroup("5:cpu:/x:y:z\n").at("cpu") == "/x:y:z");
	}

	TEST_CASE("parse_proc_cgroup: malformed lines")
	{
		CHECK_INPUT_ERROR(parse_proc_cgroup("garbage\n"), "garbage");
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::/a\nno colons here\n"), "no colons here");
		CHECK_INPUT_ERROR(parse_proc_cgroup("12:cpu\n"), "12:cpu");
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::\n"), "not absolute");
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::relative/path\n"), "not absolute");
		CHECK_INPUT_ERROR(parse_proc_cgroup("12:cpu:a/b\n"), "cgroup membership line");
		// A process outside the reader's cgroup namespace shows as "/../..": not a path we can use.
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::/../../x\n"), "0::/../../x");
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::/a/\n"), "0::/a/");
		CHECK_INPUT_ERROR(parse_proc_cgroup("0::/a//b\n"), "0::/a//b");
	}

	TEST_CASE("host modes as text")
	{
		for (HostMode mode : {HostMode::v1, HostMode::hybrid, HostMode::v2}) {
			CAPTURE(to_string(mode));
			CHECK(parse_host_mode(to_string(mode)) == mode);
		}
		CHECK(to_string(HostMode::v1) == "v1");
		CHECK(to_string(HostMode::hybrid) == "hybrid");
		CHECK(to_string(HostMode::v2) == "v2");
		CHECK_FALSE(parse_host_mode(""));
		CHECK_FALSE(parse_host_mode("V2"));
		CHECK_FALSE(parse_host_mode("unified"));
		CHECK_FALSE(parse_host_mode("v3"));
	}
}

TEST_SUITE("host")
{
	TEST_CASE("parse_v1_mounts: the v1 hierarchies of a hybrid host's mountinfo")
	{
		const char *mountinfo =
			"25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
			"26 25 0:24 / /sys/fs/cgroup rw,nosuid shared:8 - tmpfs tmpfs rw,mode=755\n"
			"27 26 0:25 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
			"28 26 0:26 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
			"29 26 0:27 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup "
			"rw,net_cls,net_prio\n"
			"30 26 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
			"31 26 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
			"32 26 0:30 /sub /mnt/cpuset\\040copy rw - cgroup cgroup rw,cpuset\n"
			"33 26 0:31 / /sys/fs/cgroup/cpuset\\040x rw - cgroup cgroup "
			"rw,cpuset,clone_children\n"
			"34 31 0:32 / /sys/fs/cgroup/unified rw - tmpfs none rw\n"
			"garbage line\n";
		auto mounts = vmmcg::parse_v1_mounts(mountinfo);
		CHECK(mounts.at("cpu") == "/sys/fs/cgroup/cpu");
		CHECK(mounts.at("cpuacct") == "/sys/fs/cgroup/cpuacct");
		CHECK(mounts.at("net_cls") == "/sys/fs/cgroup/net_cls,net_prio");
		CHECK(mounts.at("net_prio") == "/sys/fs/cgroup/net_cls,net_prio");
		CHECK(mounts.at("name=systemd") == "/sys/fs/cgroup/systemd");
		// Not a sub-tree bind mount (root /sub); octal escapes undone.
		CHECK(mounts.at("cpuset") == "/sys/fs/cgroup/cpuset x");
		CHECK(mounts.count("rw") == 0);
		CHECK(mounts.count("clone_children") == 0);
		CHECK(mounts.count("xattr") == 0);
		CHECK(mounts.size() == 6);
	}

	TEST_CASE("parse_v1_mounts: a pure v2 host has none")
	{
		CHECK(vmmcg::parse_v1_mounts("24 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").empty());
		CHECK(vmmcg::parse_v1_mounts("").empty());
	}
}
