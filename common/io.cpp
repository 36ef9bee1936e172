#include "io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "errors.h"
#include "unique_fd.h"

namespace vmmcg {

std::error_code read_bounded(int fd, std::size_t limit, std::string &out)
{
	char buf[8192];
	for (;;) {
		ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno_code();
		if (n == 0)
			return {};
		out.append(buf, static_cast<std::size_t>(n));
		if (out.size() > limit)
			return errno_code(EFBIG);
	}
}

std::string read_fd_limited(int fd, std::size_t limit, const std::string &what)
{
	std::string out;
	std::error_code ec = read_bounded(fd, limit, out);
	if (ec == std::errc::file_too_large)
		throw InputError(what + ": larger than " + std::to_string(limit) + " bytes");
	if (ec)
		throw std::system_error(ec, "reading " + what);
	return out;
}

std::string read_fd_with_deadline(int fd, std::size_t limit, const std::string &what,
				  std::chrono::milliseconds timeout)
{
	auto deadline = std::chrono::steady_clock::now() + timeout;
	std::string out;
	char buf[8192];
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
		ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			throw std::system_error(errno_code(), "reading " + what);
		if (n == 0)
			return out;
		out.append(buf, static_cast<std::size_t>(n));
		if (out.size() > limit)
			throw InputError(what + ": larger than " + std::to_string(limit) + " bytes");
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
		throw InputError(path + ": larger than " + std::to_string(limit) + " bytes");
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
