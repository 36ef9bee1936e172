#include "text.h"

#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "log.h"

using namespace vmmcg;

TEST_SUITE("text")
{
	TEST_CASE("to_number: the whole text, in range")
	{
		CHECK(to_number<int>("42") == 42);
		CHECK(to_number<int>("-7") == -7);
		CHECK_FALSE(to_number<unsigned>("-7"));
		CHECK_FALSE(to_number<int>(""));
		CHECK_FALSE(to_number<int>("4x"));
		CHECK_FALSE(to_number<int>(" 4"));
		CHECK_FALSE(to_number<int>("+4"));
		CHECK_FALSE(to_number<std::int32_t>("2147483648"));
		CHECK(to_number<std::uint64_t>("18446744073709551615") == UINT64_MAX);
	}

	TEST_CASE("trim_end, split, lines, has_word")
	{
		CHECK(trim_end("max 100000\n") == "max 100000");
		CHECK(trim_end(std::string_view("a\0\0", 3)) == "a");
		CHECK(trim_end(" \n\t").empty());
		CHECK(trim_end("  a b ") == "  a b");
		CHECK(split("a,,b", ',') == std::vector<std::string_view>{"a", "", "b"});
		CHECK(split("", ',') == std::vector<std::string_view>{""});
		CHECK(lines("1\n\n2\n") == std::vector<std::string_view>{"1", "2"});
		CHECK(lines("").empty());
		CHECK(has_word("cpu io memory", "io"));
		CHECK_FALSE(has_word("cpu io memory", "i"));
		CHECK_FALSE(has_word("", "cpu"));
	}

	TEST_CASE("printable: no control character, no backslash, bounded")
	{
		CHECK(printable("qemu-system-x86") == "qemu-system-x86");
		CHECK(printable("a\nb") == "a\\x0ab");
		CHECK(printable("a\\x0ab") == "a\\x5cx0ab"); // an escape cannot be forged either
		CHECK(printable("\xc3\xa9") == "\\xc3\\xa9");
		CHECK(printable(std::string(300, 'x')).size() == 256 + 3);
		CHECK(printable(std::string(300, 'x'), 10) == "xxxxxxxxxx...");
	}

	TEST_CASE("log lines: a newline in a value forges no line, a long value is cut")
	{
		std::string forged = "x\nvmm-cgroup-hooks poststop id=other: info: cleaned up";
		std::string line = sanitize_log_message(forged);
		CHECK(line.find('\n') == std::string::npos);
		CHECK(line.starts_with("x\\x0avmm-cgroup-hooks"));
		CHECK(sanitize_log_message(std::string(200000, 'a')).size() == max_log_line + 3);
		CHECK(sanitize_log_message("caf\xc3\xa9") == "caf\xc3\xa9"); // UTF-8 stays readable
	}
}
