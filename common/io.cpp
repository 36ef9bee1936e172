#include "io.h"

#include <fcntl.h>
#include <unistd.h>

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

std::string read_file(const std::string &path, std::size_t limit, std::error_code &ec)
{
	std::string out;
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
	if (!fd.valid()) {
		ec = errno_code();
		return out;
	}
	ec = read_bounded(fd.get(), limit, out);
	return out;
}

std::optional<std::string> read_input_file(const std::string &path, std::size_t limit, bool missing_ok)
{
	std::error_code ec;
	std::string text = read_file(path, limit, ec);
	if (ec == std::errc::no_such_file_or_directory && missing_ok)
		return std::nullopt;
	if (ec == std::errc::file_too_large)
		throw InputError(path + ": larger than " + std::to_string(limit) + " bytes");
	if (ec)
		throw InputError(path + ": cannot be read: " + ec.message());
	return text;
}

} // namespace vmmcg
