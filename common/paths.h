// Path strings the hooks accept from their input: checked here, before any of them reaches the file system.
#pragma once

#include <string>
#include <string_view>

namespace vmmcg {

// True for "/", or "/a/b" with no empty, "." or ".." component and no NUL: a path that cannot climb.
bool is_clean_absolute(std::string_view path);

// The parent of a clean absolute path ("/a/b" -> "/a", "/a" -> "/").
std::string parent_path(std::string_view path);

// Joins a clean absolute cgroup path and one more component ("/" + "x" -> "/x", "/a" + "x" -> "/a/x").
std::string join_path(std::string_view base, std::string_view name);

// Runtime container ids: runc and crun accept [A-Za-z0-9_+.-]+ except "." and ".."; we also bound the length.
// Instance names (layout.h instance_name) are ids with "-<16 hex digits>", checked with
// max_instance_name_size.
inline constexpr std::size_t max_container_id_size = 128;
inline constexpr std::size_t max_instance_name_size = max_container_id_size + 17;
bool is_valid_container_id(std::string_view id, std::size_t max_size = max_container_id_size);

} // namespace vmmcg
