// Reading and replacing <bundle>/config.json: bounded, no symlink, regular files only, replaced atomically.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "unique_fd.h"

namespace vmmcg::runtime {

// Larger than any spec an engine writes (process, mounts and seccomp lists included).
inline constexpr std::size_t max_spec_size = 16 << 20;

struct SpecFile {
	std::string bundle;
	UniqueFd dir; // the bundle directory: the file is read and replaced relative to it
	struct stat st {};
	std::string text;
};

// Opens <bundle>/config.json with O_NOFOLLOW and O_NONBLOCK (a FIFO there cannot block the wrapper) and
// reads it. Throws InputError when it is missing, no regular file, or over max_spec_size;
// std::system_error for other failures.
SpecFile read_spec_file(const std::string &bundle);

// Replaces config.json with text: a temp file in the bundle directory, with the original's mode and owner,
// renamed over it. Throws std::system_error; the temp file is removed on failure.
void replace_spec_file(const SpecFile &file, std::string_view text);

} // namespace vmmcg::runtime
