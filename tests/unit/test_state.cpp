#include "state.h"

#include <climits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;
using nlohmann::json;

namespace {

// A valid state as runc writes it at createRuntime.
json good_state()
{
	return {{"ociVersion", "1.0.2"},
		{"id", "abc-123"},
		{"status", "created"},
		{"pid", 4242},
		{"bundle", "/run/containers/abc-123/userdata"},
		{"annotations", {{"io.vmm-cgroup-hooks.enable", "true"}, {"x", "y"}}}};
}

State parse(const json &doc)
{
	return parse_state(doc.dump());
}

json with(const char *key, const json &value)
{
	json doc = good_state();
	doc[key] = value;
	return doc;
}

json without(const char *key)
{
	json doc = good_state();
	doc.erase(key);
	return doc;
}

} // namespace

TEST_SUITE("state")
{
	TEST_CASE("every field of a good state")
	{
		State state = parse(good_state());
		CHECK(state.oci_version == "1.0.2");
		CHECK(state.id == "abc-123");
		CHECK(state.status == "created");
		CHECK(state.pid == 4242);
		CHECK(state.bundle == "/run/containers/abc-123/userdata");
		REQUIRE(state.annotations.size() == 2);
		CHECK(state.annotations.at("io.vmm-cgroup-hooks.enable") == "true");
		CHECK(state.annotations.at("x") == "y");
	}

	TEST_CASE("optional fields: absent or null give empty values")
	{
		State state = parse({{"id", "a"}, {"bundle", "/b"}});
		CHECK(state.oci_version.empty());
		CHECK(state.status.empty());
		CHECK(state.pid == 0);
		CHECK(state.annotations.empty());

		State nulls = parse({{"id", "a"},
				     {"bundle", "/b"},
				     {"ociVersion", nullptr},
				     {"status", nullptr},
				     {"pid", nullptr},
				     {"annotations", nullptr}});
		CHECK(nulls.oci_version.empty());
		CHECK(nulls.status.empty());
		CHECK(nulls.pid == 0);
		CHECK(nulls.annotations.empty());
	}

	TEST_CASE("pid: 0 and absent are allowed, the bounds are enforced")
	{
		CHECK(parse(with("pid", 0)).pid == 0);
		CHECK(parse(without("pid")).pid == 0);
		CHECK(parse(with("pid", 1)).pid == 1);
		CHECK(parse(with("pid", INT_MAX)).pid == INT_MAX);
		CHECK_INPUT_ERROR(parse(with("pid", -1)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", INT_MIN)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", static_cast<long long>(INT_MAX) + 1)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", UINT64_MAX)), "'pid'");
		CHECK_INPUT_ERROR(parse_state(R"({"id":"a","bundle":"/b","pid":1e30})"), "'pid'");
	}

	TEST_CASE("pid: wrong types")
	{
		CHECK_INPUT_ERROR(parse(with("pid", "42")), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", 1.5)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", 42.0)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", true)), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", json::array({1}))), "'pid'");
		CHECK_INPUT_ERROR(parse(with("pid", json::object())), "'pid'");
	}

	TEST_CASE("string fields: wrong types name the field")
	{
		for (const char *key : {"ociVersion", "id", "status", "bundle"}) {
			CAPTURE(key);
			std::string name = std::string("'") + key + "'";
			CHECK_INPUT_ERROR(parse(with(key, 1)), name);
			CHECK_INPUT_ERROR(parse(with(key, true)), name);
			CHECK_INPUT_ERROR(parse(with(key, json::array({"a"}))), name);
			CHECK_INPUT_ERROR(parse(with(key, json::object())), name);
		}
	}

	TEST_CASE("id and bundle are required")
	{
		CHECK_INPUT_ERROR(parse(without("id")), "'id'");
		CHECK_INPUT_ERROR(parse(with("id", nullptr)), "'id'");
		CHECK_INPUT_ERROR(parse(without("bundle")), "'bundle'");
		CHECK_INPUT_ERROR(parse(with("bundle", nullptr)), "'bundle'");
	}

	TEST_CASE("id: the runtime's character set and length")
	{
		CHECK(parse(with("id", "A-z_0+9.x")).id == "A-z_0+9.x");
		CHECK(parse(with("id", "..a")).id == "..a");
		CHECK(parse(with("id", std::string(128, 'a'))).id.size() == 128);
		for (const std::string &bad :
		     std::vector<std::string>{"", ".", "..", "a/b", "/a", "../x", "a b", "a:b", "a\nb", "é",
					      std::string(129, 'a'), std::string("a\0b", 3)}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse(with("id", bad)), "'id'");
		}
	}

	TEST_CASE("bundle: a clean absolute path other than /")
	{
		CHECK(parse(with("bundle", "/a")).bundle == "/a");
		for (const char *bad :
		     {"", "/", "relative/dir", "bundle", "/a/../b", "/a/./b", "/a//b", "/a/", "/..", "./a"}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse(with("bundle", bad)), "'bundle'");
		}
	}

	TEST_CASE("annotations: an object of strings")
	{
		CHECK_INPUT_ERROR(parse(with("annotations", json::object({{"a", 1}}))), "'annotations'");
		CHECK_INPUT_ERROR(parse(with("annotations", json::object({{"a", nullptr}}))),
				  "'annotations'");
		CHECK_INPUT_ERROR(parse(with("annotations", json::object({{"a", true}}))), "'annotations'");
		CHECK_INPUT_ERROR(
			parse(with("annotations", json::object({{"ok", "v"}, {"a", json::object()}}))),
			"'a'");
		CHECK_INPUT_ERROR(parse(with("annotations", json::array({"a"}))), "'annotations'");
		CHECK_INPUT_ERROR(parse(with("annotations", "a=b")), "'annotations'");
		CHECK(parse(with("annotations", json::object())).annotations.empty());
	}

	TEST_CASE("unknown fields are ignored: runtimes add their own")
	{
		json doc = good_state();
		doc["extra"] = {{"x", 1}};
		CHECK(parse(doc).id == "abc-123");
	}

	TEST_CASE("not a JSON object")
	{
		CHECK_INPUT_ERROR(parse_state(""), "empty");
		CHECK_INPUT_ERROR(parse_state(""), "state");
		CHECK_INPUT_ERROR(parse_state("   "), "state: not valid JSON");
		CHECK_INPUT_ERROR(parse_state("{"), "state: not valid JSON");
		CHECK_INPUT_ERROR(parse_state(R"({"id":"a","bundle":"/b")"), "not valid JSON");
		CHECK_INPUT_ERROR(parse_state(R"({"id":"a","bundle":"/b"} x)"), "not valid JSON");
		CHECK_INPUT_ERROR(parse_state(R"({"id":"a",})"), "not valid JSON");
		CHECK_INPUT_ERROR(parse_state("{'id':'a'}"), "not valid JSON");
		CHECK_INPUT_ERROR(parse_state(std::string("{\"id\":\"a\0\"}", 11)), "not valid JSON");
		CHECK_INPUT_ERROR(parse_state("[]"), "must be a JSON object");
		CHECK_INPUT_ERROR(parse_state("null"), "must be a JSON object");
		CHECK_INPUT_ERROR(parse_state("42"), "must be a JSON object");
		CHECK_INPUT_ERROR(parse_state(R"("{}")"), "must be a JSON object");
	}

	TEST_CASE("deeply nested input is refused without exhausting the stack")
	{
		const std::size_t depth = 200000;
		std::string text = std::string(depth, '[') + std::string(depth, ']');
		CHECK_INPUT_ERROR(parse_state(text), "must be a JSON object");
		std::string nested = R"({"id":"a","bundle":"/b","extra":)" + text + "}";
		CHECK(parse_state(nested).id == "a");
	}

	TEST_CASE("every field of a truncated state is refused")
	{
		std::string text = good_state().dump();
		for (std::size_t n = 0; n < text.size(); ++n) {
			CAPTURE(n);
			CHECK_THROWS_AS(parse_state(text.substr(0, n)), InputError);
		}
		CHECK_NOTHROW(parse_state(text));
	}
}
