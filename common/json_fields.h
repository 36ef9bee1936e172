// Typed access to JSON fields with errors that name the document and the field:
// "state: field 'pid': must be an integer". Every reader of a file format here (state, config.json, the
// configuration, the record) goes through these, so a wrong type is always one clear InputError.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace vmmcg {

// Parses text as a JSON object, or throws InputError("<what>: ...").
nlohmann::json parse_json_object(std::string_view text, std::string_view what);

// One present, non-null field of a document: its value, the document's name and the key, for errors.
class Field
{
public:
	Field(const nlohmann::json &value, std::string_view what, std::string_view key)
		: value_(&value), what_(what), key_(key)
	{}
	// A Field keeps a pointer to its value: a temporary would be gone before the Field is.
	Field(nlohmann::json &&value, std::string_view what, std::string_view key) = delete;

	const nlohmann::json &json() const { return *value_; }
	std::string_view key() const { return key_; }
	// Throws InputError "<what>: field '<key>': <problem>": the one place such a message is made.
	[[noreturn]] void fail(std::string_view problem) const;

	std::string string() const;
	std::string non_empty_string() const;
	// Integers only: floats, strings and out-of-range numbers are refused (nlohmann's get<int>() of a
	// float is a static_cast, undefined when out of range).
	std::int64_t integer(std::int64_t min, std::int64_t max) const;
	std::uint64_t non_negative(std::uint64_t max) const;
	bool boolean() const;
	const nlohmann::json &object() const;
	const nlohmann::json &list() const;
	std::vector<std::string> strings(bool allow_empty) const;
	std::map<std::string, std::string> string_map() const;
	// The element or member `key` of this field, as a field of the same document: "record: field
	// 'vmm.pid'".
	Field at(std::string_view member) const;
	std::optional<Field> find(std::string_view member) const;
	Field item(std::size_t index) const;

private:
	const nlohmann::json *value_;
	std::string what_;
	std::string key_;
};

// The field `key` of obj, or nullopt when it is absent or null.
std::optional<Field> find_field(const nlohmann::json &obj, std::string_view key, std::string_view what);
// The field `key` of obj; absent or null throws InputError "<what>: field '<key>': missing".
Field need_field(const nlohmann::json &obj, std::string_view key, std::string_view what);

// Shorthands for optional fields: nullopt when absent or null.
std::optional<std::string> get_string(const nlohmann::json &obj, std::string_view key, std::string_view what);
std::optional<std::int64_t> get_integer(const nlohmann::json &obj, std::string_view key,
					std::string_view what, std::int64_t min, std::int64_t max);
std::optional<std::uint64_t> get_unsigned(const nlohmann::json &obj, std::string_view key,
					  std::string_view what, std::uint64_t max);
std::optional<bool> get_bool(const nlohmann::json &obj, std::string_view key, std::string_view what);
const nlohmann::json *get_object(const nlohmann::json &obj, std::string_view key, std::string_view what);
std::map<std::string, std::string> get_string_map(const nlohmann::json &obj, std::string_view key,
						  std::string_view what);

// Refuses every key of obj not in `known`, naming it: "<what>: unknown field 'x'".
void check_known_keys(const nlohmann::json &obj, const std::vector<std::string_view> &known,
		      std::string_view what);

} // namespace vmmcg
