// Bounded reads: every input the hooks read has a size limit, and one loop reads them all. And the one
// loop that writes a whole buffer.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace vmmcg {

// Reads fd to EOF into out; EFBIG once more than `limit` bytes arrived (out then holds limit + 1 or more).
std::error_code read_bounded(int fd, std::size_t limit, std::string &out);

// Reads fd to EOF. Throws InputError naming `what` if more than `limit` bytes arrive.
std::string read_fd_limited(int fd, std::size_t limit, const std::string &what);

// As read_fd_limited, for a pipe whose writer may never close it (the state on standard input): throws
// InputError when EOF has not come within `timeout`.
std::string read_fd_with_deadline(int fd, std::size_t limit, const std::string &what,
				  std::chrono::milliseconds timeout);

// Reads a kernel file (/proc, /sys): ENOENT or ESRCH for an entry that vanished come back in ec.
std::string read_file(const std::string &path, std::size_t limit, std::error_code &ec);
// The same, for a path relative to an open directory.
std::string read_file_at(int dir, const std::string &path, std::size_t limit, std::error_code &ec);

// Reads a file the hooks are given (the configuration, the bundle's config.json, the record): opened
// without following a symbolic link in its last component and without blocking (a FIFO or a device would
// hang a hook, or consume what it holds, as /proc/kmsg would), it must be a regular file. Throws InputError
// "<path>: larger than N bytes", "<path>: not a regular file", "<path>: a symbolic link" or
// "<path>: cannot be read: <reason>". nullopt when it does not exist and missing_ok is set.
std::optional<std::string> read_input_file(const std::string &path, std::size_t limit, bool missing_ok);

// Writes all of text to fd (short writes and EINTR retried). Throws std::system_error with `context` (the
// caller's wording: "writing <path>") and errno.
void write_all(int fd, std::string_view text, const std::string &context);

} // namespace vmmcg
