#include "json_fields.h"

#include <climits>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;
using nlohmann::json;

TEST_SUITE("json_fields")
{
	TEST_CASE("parse_json_object")
	{
		CHECK(parse_json_object(R"({"a":1})", "doc")["a"] == 1);
		CHECK_INPUT_ERROR(parse_json_object("", "doc"), "doc: not valid JSON (empty input)");
		CHECK_INPUT_ERROR(parse_json_object("{", "doc"), "doc: not valid JSON");
		CHECK_INPUT_ERROR(parse_json_object("[1]", "doc"), "doc: must be a JSON object");
	}

	TEST_CASE("get_string")
	{
		json doc = {{"s", "x"}, {"n", 1}, {"z", nullptr}};
		CHECK(get_string(doc, "s", "doc") == "x");
		CHECK_FALSE(get_string(doc, "absent", "doc"));
		CHECK_FALSE(get_string(doc, "z", "doc"));
		CHECK_INPUT_ERROR(get_string(doc, "n", "doc"), "doc: field 'n': must be a string");
	}

	TEST_CASE("get_integer: bounds on both representations")
	{
		// As parsed from text, where a non-negative number is stored unsigned: what the hooks see.
		json doc = json::parse(R"({"neg": -5, "pos": 7, "big": 18446744073709551615,
					   "max": 9223372036854775807, "f": 2.0, "b": true})");
		CHECK(get_integer(doc, "neg", "doc", -5, 5) == -5);
		CHECK(get_integer(doc, "pos", "doc", -5, 7) == 7);
		CHECK(get_integer(doc, "max", "doc", 0, INT64_MAX) == INT64_MAX);
		CHECK_FALSE(get_integer(doc, "absent", "doc", 0, 1));
		CHECK_INPUT_ERROR(get_integer(doc, "neg", "doc", -4, 5), "'neg': must be at least -4");
		CHECK_INPUT_ERROR(get_integer(doc, "pos", "doc", 0, 6), "'pos': must be at most 6");
		CHECK_INPUT_ERROR(get_integer(doc, "pos", "doc", 8, 10), "'pos': must be at least 8");
		CHECK_INPUT_ERROR(get_integer(doc, "big", "doc", 0, INT64_MAX), "'big': must be at most");
		CHECK_INPUT_ERROR(get_integer(doc, "f", "doc", 0, 10), "'f': must be an integer");
		CHECK_INPUT_ERROR(get_integer(doc, "b", "doc", 0, 10), "'b': must be an integer");
	}

	TEST_CASE("get_unsigned")
	{
		json doc = json::parse(
			R"({"u": 10, "neg": -1, "s": "1", "big": 18446744073709551615, "f": 10.0})");
		CHECK(get_unsigned(doc, "u", "doc", 10) == 10u);
		CHECK(get_unsigned(doc, "big", "doc", UINT64_MAX) == UINT64_MAX);
		CHECK_FALSE(get_unsigned(doc, "absent", "doc", 10));
		CHECK_INPUT_ERROR(get_unsigned(doc, "u", "doc", 9), "'u': must be at most 9");
		CHECK_INPUT_ERROR(get_unsigned(doc, "neg", "doc", 9),
				  "'neg': must be a non-negative integer");
		CHECK_INPUT_ERROR(get_unsigned(doc, "s", "doc", 9), "'s'");
		CHECK_INPUT_ERROR(get_unsigned(doc, "f", "doc", 99), "'f'");
	}

	TEST_CASE("get_bool, get_object, get_string_map")
	{
		json doc = {{"t", true},
			    {"i", 1},
			    {"o", {{"k", "v"}}},
			    {"a", json::array()},
			    {"bad", {{"k", 2}}}};
		CHECK(get_bool(doc, "t", "doc") == true);
		CHECK_FALSE(get_bool(doc, "absent", "doc"));
		CHECK_INPUT_ERROR(get_bool(doc, "i", "doc"), "'i': must be true or false");
		REQUIRE(get_object(doc, "o", "doc"));
		CHECK(get_object(doc, "o", "doc")->at("k") == "v");
		CHECK_FALSE(get_object(doc, "absent", "doc"));
		CHECK_INPUT_ERROR(get_object(doc, "a", "doc"), "'a': must be an object");
		CHECK(get_string_map(doc, "o", "doc") == std::map<std::string, std::string>{{"k", "v"}});
		CHECK(get_string_map(doc, "absent", "doc").empty());
		CHECK_INPUT_ERROR(get_string_map(doc, "bad", "doc"), "'bad': value of 'k' must be a string");
	}
}
