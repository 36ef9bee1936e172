#include "json_writer.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace vmmcg;
using nlohmann::json;

TEST_SUITE("json_writer")
{
	TEST_CASE("objects, arrays and values, in the order written, parsed back by nlohmann")
	{
		JsonWriter out;
		out.begin_object();
		out.key("z").integer(-3);
		out.key("a")
			.begin_array()
			.unsigned_integer(18446744073709551615ULL)
			.boolean(true)
			.null()
			.end_array();
		out.key("s").string("tab\there \"q\" \\ \x01 \xe2\x82\xac");
		out.key("o").begin_object().key("x").optional_string(std::nullopt).end_object();
		out.key("l").strings({"a", "b"});
		out.end_object();
		CHECK(out.text().starts_with("{\"z\":-3,\"a\":["));
		json doc = json::parse(out.text());
		CHECK(doc["z"] == -3);
		CHECK(doc["a"][0].get<std::uint64_t>() == 18446744073709551615ULL);
		CHECK(doc["a"][1] == true);
		CHECK(doc["a"][2].is_null());
		CHECK(doc["s"] == "tab\there \"q\" \\ \x01 \xe2\x82\xac");
		CHECK(doc["o"]["x"].is_null());
		CHECK(doc["l"] == json{"a", "b"});
	}

	TEST_CASE("empty containers and text that is not UTF-8")
	{
		JsonWriter out;
		out.begin_object()
			.key("a")
			.begin_array()
			.end_array()
			.key("o")
			.begin_object()
			.end_object()
			.end_object();
		CHECK(out.text() == "{\"a\":[],\"o\":{}}");
		JsonWriter bad;
		CHECK_THROWS_AS(bad.string("\xff"), json::type_error);
	}
}
