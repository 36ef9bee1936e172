#include "json_fields.h"

#include "errors.h"

namespace vmmcg {

namespace {

[[noreturn]] void field_error(const std::string &what, const char *key, const std::string &problem)
{
	throw InputError(what + ": field '" + key + "': " + problem);
}

} // namespace

nlohmann::json parse_json_object(std::string_view text, const std::string &what)
{
	nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
	if (doc.is_discarded())
		throw InputError(what + ": not valid JSON" + (text.empty() ? " (empty input)" : ""));
	if (!doc.is_object())
		throw InputError(what + ": must be a JSON object");
	return doc;
}

std::optional<std::string> get_string(const nlohmann::json &obj, const char *key, const std::string &what)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	if (!it->is_string())
		field_error(what, key, "must be a string");
	return it->get<std::string>();
}

std::int64_t as_integer(const nlohmann::json &value, const char *key, const std::string &what,
			std::int64_t min, std::int64_t max)
{
	// is_number_integer() first: nlohmann's get<int>() of a float is a static_cast, undefined when out of
	// range.
	if (value.is_number_unsigned()) {
		auto number = value.get<std::uint64_t>();
		if (number > static_cast<std::uint64_t>(max))
			field_error(what, key, "must be at most " + std::to_string(max));
		if (static_cast<std::int64_t>(number) < min)
			field_error(what, key, "must be at least " + std::to_string(min));
		return static_cast<std::int64_t>(number);
	}
	if (!value.is_number_integer())
		field_error(what, key, "must be an integer");
	auto number = value.get<std::int64_t>();
	if (number < min)
		field_error(what, key, "must be at least " + std::to_string(min));
	if (number > max)
		field_error(what, key, "must be at most " + std::to_string(max));
	return number;
}

std::optional<std::int64_t> get_integer(const nlohmann::json &obj, const char *key, const std::string &what,
					std::int64_t min, std::int64_t max)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	return as_integer(*it, key, what, min, max);
}

std::optional<std::uint64_t> get_unsigned(const nlohmann::json &obj, const char *key, const std::string &what,
					  std::uint64_t max)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	if (!it->is_number_unsigned())
		field_error(what, key, "must be a non-negative integer");
	auto value = it->get<std::uint64_t>();
	if (value > max)
		field_error(what, key, "must be at most " + std::to_string(max));
	return value;
}

std::optional<bool> get_bool(const nlohmann::json &obj, const char *key, const std::string &what)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	if (!it->is_boolean())
		field_error(what, key, "must be true or false");
	return it->get<bool>();
}

const nlohmann::json *get_object(const nlohmann::json &obj, const char *key, const std::string &what)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return nullptr;
	if (!it->is_object())
		field_error(what, key, "must be an object");
	return &*it;
}

std::map<std::string, std::string> get_string_map(const nlohmann::json &obj, const char *key,
						  const std::string &what)
{
	std::map<std::string, std::string> out;
	const nlohmann::json *map = get_object(obj, key, what);
	if (!map)
		return out;
	for (auto &[name, value] : map->items()) {
		if (!value.is_string())
			field_error(what, key, "value of '" + name + "' must be a string");
		out.emplace(name, value.get<std::string>());
	}
	return out;
}

} // namespace vmmcg
