// Typed access to JSON fields with errors that name the field: "state: field 'pid': must be an integer".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vmmcg {

// Parses text as a JSON object, or throws InputError("<what>: ...").
nlohmann::json parse_json_object(std::string_view text, const std::string &what);

// A JSON value as an integer in [min, max]; floats, strings and out-of-range numbers throw, naming `key`.
std::int64_t as_integer(const nlohmann::json &value, const char *key, const std::string &what,
			std::int64_t min, std::int64_t max);

// Field accessors: `what` names the document, `key` the field. Absent fields give std::nullopt.
std::optional<std::string> get_string(const nlohmann::json &obj, const char *key, const std::string &what);
std::optional<std::int64_t> get_integer(const nlohmann::json &obj, const char *key, const std::string &what,
					std::int64_t min, std::int64_t max);
std::optional<std::uint64_t> get_unsigned(const nlohmann::json &obj, const char *key, const std::string &what,
					  std::uint64_t max);
std::optional<bool> get_bool(const nlohmann::json &obj, const char *key, const std::string &what);
const nlohmann::json *get_object(const nlohmann::json &obj, const char *key, const std::string &what);
std::map<std::string, std::string> get_string_map(const nlohmann::json &obj, const char *key,
						  const std::string &what);

} // namespace vmmcg
