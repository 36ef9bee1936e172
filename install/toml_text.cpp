#include "toml_text.h"

#include <sstream>
#include <vector>

#include "errors.h"

namespace vmmcg::install {

namespace {

// The line at offset `at`, without its newline (and a '\r' before it).
std::string_view line_at(std::string_view text, std::size_t at, std::size_t &next)
{
	std::size_t nl = text.find('\n', at);
	next = nl == std::string_view::npos ? text.size() : nl + 1;
	std::string_view line = text.substr(at, (nl == std::string_view::npos ? text.size() : nl) - at);
	if (line.ends_with('\r'))
		line.remove_suffix(1);
	while (!line.empty() && (line.back() == ' ' || line.back() == '\t'))
		line.remove_suffix(1);
	return line;
}

std::string marker(std::string_view which, std::string_view tag)
{
	return std::string(which) + " " + std::string(tag);
}

bool bare_key(std::string_view key)
{
	if (key.empty())
		return false;
	for (char c : key)
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	return true;
}

} // namespace

std::optional<Block> find_block(std::string_view text, std::string_view tag, const std::string &what)
{
	const std::string begin_line = marker(begin_marker, tag);
	const std::string end_line = marker(end_marker, tag);
	std::optional<Block> found;
	std::optional<std::size_t> open;
	for (std::size_t at = 0, next = 0; at < text.size(); at = next) {
		std::string_view line = line_at(text, at, next);
		if (line == begin_line) {
			if (open || found)
				throw InputError(what + ": '" + begin_line +
						 "' appears twice: left alone (remove one block by hand)");
			open = at;
		} else if (line == end_line) {
			if (!open)
				throw InputError(what + ": '" + end_line + "' without '" + begin_line +
						 "': left alone");
			found = Block{*open, next};
			open.reset();
		}
	}
	if (open)
		throw InputError(what + ": '" + begin_line + "' without '" + end_line + "': left alone");
	return found;
}

bool has_block(std::string_view text)
{
	for (std::size_t at = 0, next = 0; at < text.size(); at = next)
		if (line_at(text, at, next).starts_with(std::string(begin_marker) + " "))
			return true;
	return false;
}

std::string block_text(std::string_view tag, std::string_view body)
{
	std::string out = marker(begin_marker, tag) + "\n";
	out += body;
	if (!out.ends_with('\n'))
		out += '\n';
	out += marker(end_marker, tag) + "\n";
	return out;
}

std::string append_block(std::string_view text, std::string_view tag, std::string_view body)
{
	std::string out(text);
	if (!out.empty() && !out.ends_with('\n'))
		out += '\n';
	if (!out.empty())
		out += '\n';
	return out + block_text(tag, body);
}

std::string prepend_block(std::string_view text, std::string_view tag, std::string_view body)
{
	return block_text(tag, body) + "\n" + std::string(text);
}

std::string replace_block(std::string_view text, Block block, std::string_view tag, std::string_view body)
{
	return std::string(text.substr(0, block.begin)) + block_text(tag, body) +
	       std::string(text.substr(block.end));
}

std::string remove_block(std::string_view text, Block block)
{
	std::string_view before = text.substr(0, block.begin);
	std::string_view after = text.substr(block.end);
	if (block.begin == 0) {
		// prepend_block's blank line after it
		if (after.starts_with("\n"))
			after.remove_prefix(1);
	} else if (before.ends_with("\n\n")) {
		// append_block's blank line before it
		before.remove_suffix(1);
	}
	return std::string(before) + std::string(after);
}

toml::table parse_toml(std::string_view text, const std::string &what)
{
	try {
		return toml::parse(text, what);
	} catch (const toml::parse_error &e) {
		const auto &where = e.source().begin;
		throw InputError(what + ": not valid TOML (line " + std::to_string(where.line) + ", column " +
				 std::to_string(where.column) + ": " + std::string(e.description()) + ")");
	}
}

std::string toml_quote(std::string_view value)
{
	std::string out = "\"";
	for (char c : value) {
		auto u = static_cast<unsigned char>(c);
		if (c == '"' || c == '\\') {
			out += '\\';
			out += c;
		} else if (u < 0x20 || u == 0x7f) {
			static const char hex[] = "0123456789ABCDEF";
			out += "\\u00";
			out += hex[u >> 4];
			out += hex[u & 15];
		} else {
			out += c;
		}
	}
	return out + "\"";
}

std::string toml_key(std::string_view key)
{
	return bare_key(key) ? std::string(key) : toml_quote(key);
}

void prune_empty_tables(toml::table &table)
{
	std::vector<std::string> empty;
	for (auto &&[key, node] : table) {
		if (auto *sub = node.as_table()) {
			prune_empty_tables(*sub);
			if (sub->empty())
				empty.emplace_back(key.str());
		}
	}
	for (const auto &key : empty)
		table.erase(key);
}

} // namespace vmmcg::install
