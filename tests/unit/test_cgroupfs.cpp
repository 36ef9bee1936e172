#include "cgroupfs.h"

#include <climits>
#include <vector>

#include <doctest/doctest.h>

using namespace vmmcg;

TEST_SUITE("cgroupfs")
{
	TEST_CASE("parse_ids: one id per line")
	{
		CHECK(parse_ids("12\n34\n") == std::vector<pid_t>{12, 34});
		CHECK(parse_ids("12\n34") == std::vector<pid_t>{12, 34});
		CHECK(parse_ids("1\n") == std::vector<pid_t>{1});
		CHECK(parse_ids("2147483647\n") == std::vector<pid_t>{INT_MAX});
		CHECK(parse_ids("5\n3\n5\n") == std::vector<pid_t>{5, 3, 5});
	}

	TEST_CASE("parse_ids: empty input and blank lines")
	{
		CHECK(parse_ids("").empty());
		CHECK(parse_ids("\n").empty());
		CHECK(parse_ids("\n\n12\n\n34\n\n") == std::vector<pid_t>{12, 34});
	}

	TEST_CASE("parse_ids: junk lines are skipped")
	{
		CHECK(parse_ids("abc\n12\n") == std::vector<pid_t>{12});
		CHECK(parse_ids("0\n-5\n7\n") == std::vector<pid_t>{7});
		CHECK(parse_ids("12 \n 13\n14\n") == std::vector<pid_t>{14});
		CHECK(parse_ids("12x\n+13\n14\r\n15\n") == std::vector<pid_t>{15});
		CHECK(parse_ids("2147483648\n99999999999999999999\n8\n") == std::vector<pid_t>{8});
		CHECK(parse_ids("1.5\n0x10\n9") == std::vector<pid_t>{9});
	}
}
