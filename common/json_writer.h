// A compact JSON writer that appends to a string, keys in the order they are written: the record is
// written with it rather than through a document (building, dumping and destroying a document was 43% of
// createRuntime's instructions; docs/performance.md). Its output is checked by nlohmann's parser in tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmmcg {

class JsonWriter
{
public:
	// Members and elements: key() before each member's value inside an object.
	JsonWriter &begin_object();
	JsonWriter &end_object();
	JsonWriter &begin_array();
	JsonWriter &end_array();
	JsonWriter &key(std::string_view name);

	// Strings are escaped as JSON requires; text that is not UTF-8 throws (nlohmann's type_error).
	JsonWriter &string(std::string_view text);
	JsonWriter &optional_string(const std::optional<std::string> &text);
	JsonWriter &integer(std::int64_t value);
	JsonWriter &unsigned_integer(std::uint64_t value);
	JsonWriter &boolean(bool value);
	JsonWriter &null();
	JsonWriter &strings(const std::vector<std::string> &list);

	const std::string &text() const { return out_; }
	std::string take() { return std::move(out_); }

private:
	void separate();

	std::string out_;
	bool first_ = true; // no member or element written yet at this level
};

} // namespace vmmcg
