// One field list per file format, serving its reader and its writer: each field is named once, with how
// it is written and how it is read, so the two cannot drift apart. The record (record.cpp) and the
// configuration (config.cpp) are described this way.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "json_writer.h"

namespace vmmcg {

enum class Presence {
	required, // absent or null is an error
	optional, // absent or null leaves the default
	not_null, // may be absent; null is an error (a key that is present must have a value)
};

template <typename T>
struct FieldSpec {
	std::string_view key;
	Presence presence;
	void (*read)(const Field &field, T &into);
	void (*write)(JsonWriter &out, const T &from) = nullptr; // nullptr: a field that is only read
};

template <typename T, std::size_t N>
using Schema = std::array<FieldSpec<T>, N>;

// Writes `from` as an object, its fields in the schema's order.
template <typename T, std::size_t N>
void write_object(JsonWriter &out, const T &from, const Schema<T, N> &schema)
{
	out.begin_object();
	for (const auto &spec : schema) {
		out.key(spec.key);
		spec.write(out, from);
	}
	out.end_object();
}

// Reads the object `obj` into `into`: unknown keys are refused, each known one read by its spec.
// `field` names the object in errors ("record: field 'v2'"); `what` names the document.
template <typename T, std::size_t N>
void read_object(const nlohmann::json &obj, std::string_view what, std::string_view prefix, T &into,
		 const Schema<T, N> &schema)
{
	std::vector<std::string_view> known;
	for (const auto &spec : schema)
		known.push_back(spec.key);
	check_known_keys(obj, known,
			 prefix.empty() ? std::string(what) : std::string(what) + ": " + std::string(prefix));
	for (const auto &spec : schema) {
		std::string key = prefix.empty() ? std::string(spec.key)
						 : std::string(prefix) + "." + std::string(spec.key);
		auto it = obj.find(spec.key);
		bool absent = it == obj.end();
		bool null = !absent && it->is_null();
		if ((absent || null) && spec.presence == Presence::required)
			Field(obj, what, key).fail("missing");
		if (null && spec.presence == Presence::not_null)
			Field(obj, what, key).fail("must not be null");
		if (!absent && !null)
			spec.read(Field(*it, what, key), into);
	}
}

} // namespace vmmcg
