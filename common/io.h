// Small, bounded file reads: every input the hooks read has a size limit.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

namespace vmmcg {

// Reads fd to EOF. Throws InputError naming `what` if more than `limit` bytes arrive.
std::string read_fd_limited(int fd, std::size_t limit, const std::string &what);

// Reads a whole file (no symlink restriction: for /proc and the bundle). Throws std::system_error.
std::string read_file(const std::string &path, std::size_t limit);

// As read_file, returning the error instead of throwing (ENOENT, ESRCH for a /proc entry that vanished).
std::string read_file(const std::string &path, std::size_t limit, std::error_code &ec);

} // namespace vmmcg
