#include "json_fields.h"

#include <algorithm>

#include "errors.h"

namespace vmmcg {

namespace {

std::string quoted_key(std::string_view what, std::string_view key)
{
	return std::string(what) + ": field '" + std::string(key) + "'";
}

} // namespace

nlohmann::json parse_json_object(std::string_view text, std::string_view what)
{
	nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
	if (doc.is_discarded())
		throw InputError(std::string(what) + ": not valid JSON" +
				 (text.empty() ? " (empty input)" : ""));
	if (!doc.is_object())
		throw InputError(std::string(what) + ": must be a JSON object");
	return doc;
}

void Field::fail(std::string_view problem) const
{
	throw InputError(quoted_key(what_, key_) + ": " + std::string(problem));
}

std::string Field::string() const
{
	if (!value_->is_string())
		fail("must be a string");
	return value_->get<std::string>();
}

std::string Field::non_empty_string() const
{
	std::string text = string();
	if (text.empty())
		fail("must not be empty");
	return text;
}

std::int64_t Field::integer(std::int64_t min, std::int64_t max) const
{
	if (value_->is_number_unsigned()) {
		auto number = value_->get<std::uint64_t>();
		if (number > static_cast<std::uint64_t>(max))
			fail("must be at most " + std::to_string(max));
		if (static_cast<std::int64_t>(number) < min)
			fail("must be at least " + std::to_string(min));
		return static_cast<std::int64_t>(number);
	}
	if (!value_->is_number_integer())
		fail("must be an integer");
	auto number = value_->get<std::int64_t>();
	if (number < min)
		fail("must be at least " + std::to_string(min));
	if (number > max)
		fail("must be at most " + std::to_string(max));
	return number;
}

std::uint64_t Field::non_negative(std::uint64_t max) const
{
	if (!value_->is_number_unsigned())
		fail("must be a non-negative integer");
	auto value = value_->get<std::uint64_t>();
	if (value > max)
		fail("must be at most " + std::to_string(max));
	return value;
}

bool Field::boolean() const
{
	if (!value_->is_boolean())
		fail("must be true or false");
	return value_->get<bool>();
}

const nlohmann::json &Field::object() const
{
	if (!value_->is_object())
		fail("must be an object");
	return *value_;
}

const nlohmann::json &Field::list() const
{
	if (!value_->is_array())
		fail("must be a list");
	return *value_;
}

std::vector<std::string> Field::strings(bool allow_empty) const
{
	if (!value_->is_array())
		fail("must be a list of strings");
	std::vector<std::string> out;
	for (const auto &item : *value_) {
		if (!item.is_string() || item.get_ref<const std::string &>().empty())
			fail("must be a list of non-empty strings");
		out.push_back(item.get<std::string>());
	}
	if (out.empty() && !allow_empty)
		fail("must not be empty");
	return out;
}

std::map<std::string, std::string> Field::string_map() const
{
	std::map<std::string, std::string> out;
	for (auto &[name, value] : object().items()) {
		if (!value.is_string())
			fail("value of '" + name + "' must be a string");
		out.emplace(name, value.get<std::string>());
	}
	return out;
}

Field Field::at(std::string_view member) const
{
	auto found = find(member);
	if (!found)
		Field(*value_, what_, key_ + "." + std::string(member)).fail("missing");
	return *found;
}

std::optional<Field> Field::find(std::string_view member) const
{
	auto it = object().find(member);
	if (it == value_->end() || it->is_null())
		return std::nullopt;
	return Field(*it, what_, key_ + "." + std::string(member));
}

Field Field::item(std::size_t index) const
{
	return Field(list().at(index), what_, key_ + "[" + std::to_string(index) + "]");
}

std::optional<Field> find_field(const nlohmann::json &obj, std::string_view key, std::string_view what)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	return Field(*it, what, key);
}

Field need_field(const nlohmann::json &obj, std::string_view key, std::string_view what)
{
	auto field = find_field(obj, key, what);
	if (!field)
		throw InputError(quoted_key(what, key) + ": missing");
	return *field;
}

std::optional<std::string> get_string(const nlohmann::json &obj, std::string_view key, std::string_view what)
{
	auto field = find_field(obj, key, what);
	return field ? std::optional(field->string()) : std::nullopt;
}

std::optional<std::int64_t> get_integer(const nlohmann::json &obj, std::string_view key,
					std::string_view what, std::int64_t min, std::int64_t max)
{
	auto field = find_field(obj, key, what);
	return field ? std::optional(field->integer(min, max)) : std::nullopt;
}

std::optional<std::uint64_t> get_unsigned(const nlohmann::json &obj, std::string_view key,
					  std::string_view what, std::uint64_t max)
{
	auto field = find_field(obj, key, what);
	return field ? std::optional(field->non_negative(max)) : std::nullopt;
}

std::optional<bool> get_bool(const nlohmann::json &obj, std::string_view key, std::string_view what)
{
	auto field = find_field(obj, key, what);
	return field ? std::optional(field->boolean()) : std::nullopt;
}

const nlohmann::json *get_object(const nlohmann::json &obj, std::string_view key, std::string_view what)
{
	auto field = find_field(obj, key, what);
	return field ? &field->object() : nullptr;
}

std::map<std::string, std::string> get_string_map(const nlohmann::json &obj, std::string_view key,
						  std::string_view what)
{
	auto field = find_field(obj, key, what);
	return field ? field->string_map() : std::map<std::string, std::string>{};
}

void check_known_keys(const nlohmann::json &obj, const std::vector<std::string_view> &known,
		      std::string_view what)
{
	for (auto &[key, value] : obj.items()) {
		(void)value;
		if (std::find(known.begin(), known.end(), key) == known.end())
			throw InputError(std::string(what) + ": unknown field '" + key + "'");
	}
}

} // namespace vmmcg
