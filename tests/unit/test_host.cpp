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
