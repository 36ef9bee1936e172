// The textual edit of a user's TOML file: the installer never re-serializes a configuration (that would
// drop its comments, order and formatting); it adds or removes one marked block of lines,
//
//   # BEGIN vmm-cgroup-hooks <tag>
//   ...
//   # END vmm-cgroup-hooks <tag>
//
// and checks with toml++ that the file parses before and after, and that the result holds what it must.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <toml++/toml.h>

namespace vmmcg::install {

inline constexpr std::string_view begin_marker = "# BEGIN vmm-cgroup-hooks";
inline constexpr std::string_view end_marker = "# END vmm-cgroup-hooks";

// [begin, end): byte offsets of the block's lines, both marker lines and their newlines included.
struct Block {
	std::size_t begin = 0;
	std::size_t end = 0;
};

// The block of `tag` (e.g. "handler vmm"). Throws InputError (naming `what`) when a BEGIN line of it has no
// END line, or it appears twice.
std::optional<Block> find_block(std::string_view text, std::string_view tag, const std::string &what);

// Whether the text holds any block of the project (any tag).
bool has_block(std::string_view text);

// The lines of a block: the markers around body (body ends with a newline).
std::string block_text(std::string_view tag, std::string_view body);

// Adds the block at the end: after a newline if the text does not end with one, and a blank line.
std::string append_block(std::string_view text, std::string_view tag, std::string_view body);
// Adds the block at the start (top-level keys must come before the first table header).
std::string prepend_block(std::string_view text, std::string_view tag, std::string_view body);
// Replaces the block's lines with another body (the same place in the file).
std::string replace_block(std::string_view text, Block block, std::string_view tag, std::string_view body);
// Removes the block's lines, and the blank line append_block put before it.
std::string remove_block(std::string_view text, Block block);

// Parses TOML. Throws InputError "<what>: not valid TOML (line L, column C: reason)".
toml::table parse_toml(std::string_view text, const std::string &what);

// A TOML basic string: quoted, with \\, \" and control characters escaped.
std::string toml_quote(std::string_view value);
// A key of a dotted path: bare when it can be, else quoted.
std::string toml_key(std::string_view key);

// Removes the tables that are empty, recursively (the parents a block made), so that two trees compare
// equal when they differ only by tables a block added.
void prune_empty_tables(toml::table &table);

} // namespace vmmcg::install
