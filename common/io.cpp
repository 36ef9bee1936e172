#include "io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "errors.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

// One read(2), appended to out (EINTR is retried): EFBIG once out holds more than limit bytes; eof is set
// at the end of the file. The step of both bounded readers: read_bounded loops on it, read_fd_with_deadline
// polls before each step, since a second read of a pipe whose writer keeps it open would block past the
// deadline.
std::error_code read_step(int fd, std::size_t limit, std::string &out, bool &eof)
{
	char buf[8192];
	ssize_t n;
	do
		n = ::read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno_code();
	eof = n == 0;
	out.append(buf, static_cast<std::size_t>(n));
	if (out.size() > limit)
		return errno_code(EFBIG);
	return {};
}

// The one message for input over its bound.
InputError too_large(const std::string &what, std::size_t limit)
{
	return InputError(what + ": larger than " + std::to_string(limit) + " bytes");
}

} // namespace

std::error_code read_bounded(int fd, std::size_t limit, std::string &out)
{
	for (;;) {
		bool eof = false;
		if (std::error_code ec = read_step(fd, limit, out, eof))
			return ec;
		if (eof)
			return {};
	}
}

std::string read_fd_limited(int fd, std::size_t limit, const std::string &what)
{
	std::string out;
	std::error_code ec = read_bounded(fd, limit, out);
	if (ec == std::errc::file_too_large)
		throw too_large(what, limit);
	if (ec)
		throw std::system_error(ec, "reading " + what);
	return out;
}

std::string read_fd_with_deadline(int fd, std::size_t limit, const std::string &what,
				  std::chrono::milliseconds timeout)
{
	auto deadline = std::chrono::steady_clock::now() + timeout;
	std::string out;
	for (;;) {
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		struct pollfd pfd {
			fd, POLLIN, 0
		};
		int ready = ::poll(&pfd, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready == 0)
			throw InputError(what + ": not closed within " + std::to_string(timeout.count()) +
					 " ms");
		bool eof = false;
		std::error_code ec = read_step(fd, limit, out, eof);
		if (ec == std::errc::resource_unavailable_try_again)
			continue;
		if (ec == std::errc::file_too_large)
			throw too_large(what, limit);
		if (ec)
			throw std::system_error(ec, "reading " + what);
		if (eof)
			return out;
	}
}

std::string read_file(const std::string &path, std::size_t limit, std::error_code &ec)
{
	return read_file_at(AT_FDCWD, path, limit, ec);
}

std::string read_file_at(int dir, const std::string &path, std::size_t limit, std::error_code &ec)
{
	std::string out;
	UniqueFd fd(::openat(dir, path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
	if (!fd.valid()) {
		ec = errno_code();
		return out;
	}
	ec = read_bounded(fd.get(), limit, out);
	return out;
}

namespace {

// The fd of a regular file given to the hooks, or an InputError naming why not.
UniqueFd open_input_file(const std::string &path, bool missing_ok, bool &missing)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
	if (!fd.valid()) {
		missing = errno == ENOENT && missing_ok;
		if (missing)
			return fd;
		if (errno == ELOOP)
			throw InputError(path + ": a symbolic link: refused");
		throw InputError(path + ": cannot be read: " + errno_code().message());
	}
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0)
		throw InputError(path + ": cannot be read: " + errno_code().message());
	if (!S_ISREG(st.st_mode))
		throw InputError(path + ": not a regular file");
	return fd;
}

} // namespace

std::optional<std::string> read_input_file(const std::string &path, std::size_t limit, bool missing_ok)
{
	bool missing = false;
	UniqueFd fd = open_input_file(path, missing_ok, missing);
	if (missing)
		return std::nullopt;
	std::string text;
	std::error_code ec = read_bounded(fd.get(), limit, text);
	if (ec == std::errc::file_too_large)
		throw too_large(path, limit);
	if (ec)
		throw InputError(path + ": cannot be read: " + ec.message());
	return text;
}

void write_all(int fd, std::string_view text, const std::string &context)
{
	while (!text.empty()) {
		ssize_t n = ::write(fd, text.data(), text.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			throw_errno(context);
		text.remove_prefix(static_cast<std::size_t>(n));
	}
}

} // namespace vmmcg
