#include "paths.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

using namespace vmmcg;

TEST_SUITE("paths")
{
	TEST_CASE("is_clean_absolute")
	{
		for (const char *good :
		     {"/", "/a", "/a/b", "/a.b/c-d", "/...", "/..a", "/a..", "/.a/b.", "/a b"}) {
			CAPTURE(good);
			CHECK(is_clean_absolute(good));
		}
		for (const char *bad : {"", "a", "a/b", "./a", "//", "/a/", "/a//b", "//a", "/.", "/..",
					"/a/.", "/a/..", "/./a", "/../a", "/a/./b", "/a/../b", "/a/b/"}) {
			CAPTURE(bad);
			CHECK_FALSE(is_clean_absolute(bad));
		}
		CHECK_FALSE(is_clean_absolute(std::string("/a\0b", 4)));
		CHECK_FALSE(is_clean_absolute(std::string("/\0", 2)));
		CHECK_FALSE(is_clean_absolute(std::string("/a/\0", 4)));
	}

	TEST_CASE("parent_path")
	{
		CHECK(parent_path("/a/b") == "/a");
		CHECK(parent_path("/a/b/c") == "/a/b");
		CHECK(parent_path("/a") == "/");
		CHECK(parent_path("/") == "/");
	}

	TEST_CASE("join_path")
	{
		CHECK(join_path("/", "x") == "/x");
		CHECK(join_path("/a", "x") == "/a/x");
		CHECK(join_path("/a/b", "vcpu") == "/a/b/vcpu");
		CHECK(join_path("/run/dir", "id.json") == "/run/dir/id.json");
		CHECK(join_path("", "x") == "/x");
		CHECK(parent_path(join_path("/a/b", "c")) == "/a/b");
	}

	TEST_CASE("is_valid_container_id")
	{
		for (const std::string &good : std::vector<std::string>{
			     "a", "abc-123", "A_b+c.d-e", "...", "..a", ".a", "0", std::string(128, 'x')}) {
			CAPTURE(good);
			CHECK(is_valid_container_id(good));
		}
		for (const std::string &bad :
		     std::vector<std::string>{"", ".", "..", "a/b", "/", "a b", "a:b", "a\\b", "a*", "a\n",
					      "ü", std::string(129, 'x'), std::string("a\0", 2)}) {
			CAPTURE(bad);
			CHECK_FALSE(is_valid_container_id(bad));
		}
	}
}
