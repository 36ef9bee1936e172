// Shared by the unit tests: a temporary directory removed when the test ends, and a check that an
// expression throws InputError with a message naming what it should.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <doctest/doctest.h>

#include "errors.h"

namespace unit {

class TempDir
{
public:
	TempDir()
	{
		std::string pattern = (std::filesystem::temp_directory_path() / "vmmcg-unit.XXXXXX").string();
		if (!::mkdtemp(pattern.data()))
			throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
		path_ = pattern;
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	~TempDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path_, ec);
	}

	const std::string &path() const { return path_; }
	std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

	// Writes a file below the directory, creating its parents.
	std::string write(std::string_view name, std::string_view content) const
	{
		std::filesystem::path file = std::filesystem::path(path_) / name;
		std::filesystem::create_directories(file.parent_path());
		std::ofstream out(file, std::ios::binary | std::ios::trunc);
		out << content;
		if (!out)
			throw std::runtime_error("cannot write " + file.string());
		return file.string();
	}

private:
	std::string path_;
};

// Runs f; true with the message when it threw an E, false with a description otherwise.
template <typename E, typename F>
bool catch_error(F &&f, std::string &message)
{
	try {
		f();
	} catch (const E &e) {
		message = e.what();
		return true;
	} catch (const std::exception &e) {
		message = std::string("another exception: ") + e.what();
		return false;
	}
	message = "no exception";
	return false;
}

} // namespace unit

// CHECKs that expr throws the error type whose message contains needle.
#define CHECK_ERROR_OF(type, expr, needle)                                                                   \
	do {                                                                                                 \
		std::string unit_message_;                                                                   \
		bool unit_thrown_ = unit::catch_error<type>([&] { (void)(expr); }, unit_message_);           \
		CHECK_MESSAGE((unit_thrown_ && unit_message_.find(needle) != std::string::npos),             \
			      #expr << " -> " << unit_message_ << " (expected " #type " containing \""       \
				    << (needle) << "\")");                                                   \
	} while (0)
#define CHECK_INPUT_ERROR(expr, needle) CHECK_ERROR_OF(vmmcg::InputError, expr, needle)
#define CHECK_HOST_ERROR(expr, needle) CHECK_ERROR_OF(vmmcg::HostError, expr, needle)
