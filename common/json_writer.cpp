#include "json_writer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace vmmcg {

void JsonWriter::separate()
{
	if (!first_)
		out_ += ',';
	first_ = false;
}

JsonWriter &JsonWriter::begin_object()
{
	separate();
	out_ += '{';
	first_ = true;
	return *this;
}

JsonWriter &JsonWriter::end_object()
{
	out_ += '}';
	first_ = false;
	return *this;
}

JsonWriter &JsonWriter::begin_array()
{
	separate();
	out_ += '[';
	first_ = true;
	return *this;
}

JsonWriter &JsonWriter::end_array()
{
	out_ += ']';
	first_ = false;
	return *this;
}

JsonWriter &JsonWriter::key(std::string_view name)
{
	string(name);
	out_ += ':';
	first_ = true; // the value that follows takes no comma
	return *this;
}

JsonWriter &JsonWriter::string(std::string_view text)
{
	separate();
	bool plain = std::all_of(text.begin(), text.end(), [](char c) {
		auto byte = static_cast<unsigned char>(c);
		return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
	});
	if (plain)
		out_.append("\"").append(text).append("\"");
	else // escapes, and refuses what is not UTF-8
		out_ += nlohmann::json(std::string(text)).dump();
	return *this;
}

JsonWriter &JsonWriter::optional_string(const std::optional<std::string> &text)
{
	return text ? string(*text) : null();
}

JsonWriter &JsonWriter::integer(std::int64_t value)
{
	separate();
	out_ += std::to_string(value);
	return *this;
}

JsonWriter &JsonWriter::unsigned_integer(std::uint64_t value)
{
	separate();
	out_ += std::to_string(value);
	return *this;
}

JsonWriter &JsonWriter::boolean(bool value)
{
	separate();
	out_ += value ? "true" : "false";
	return *this;
}

JsonWriter &JsonWriter::null()
{
	separate();
	out_ += "null";
	return *this;
}

JsonWriter &JsonWriter::strings(const std::vector<std::string> &list)
{
	begin_array();
	for (const auto &item : list)
		string(item);
	return end_array();
}

} // namespace vmmcg
