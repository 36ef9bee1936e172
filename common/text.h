// Small text helpers shared by every parser: numbers, trimming, splitting. No allocation where a view serves.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmmcg {

// The whole of text as a number of type T, or nullopt (empty, trailing bytes, out of range, a sign for
// unsigned types).
template <typename T>
std::optional<T> to_number(std::string_view text)
{
	T value{};
	auto [ptr, err] = std::from_chars(text.data(), text.data() + text.size(), value);
	if (text.empty() || err != std::errc() || ptr != text.data() + text.size())
		return std::nullopt;
	return value;
}

// Without trailing whitespace (newline, space, tab) and NUL bytes: what a kernel file ends with.
std::string_view trim_end(std::string_view text);
inline std::string trimmed(std::string_view text)
{
	return std::string(trim_end(text));
}

// Each part between separators, empty ones included ("a,,b" -> "a", "", "b"; "" -> one empty part).
std::vector<std::string_view> split(std::string_view text, char separator);
// The views point into the text: never into a temporary that dies at the end of the statement.
std::vector<std::string_view> split(std::string &&text, char separator) = delete;
inline std::vector<std::string_view> split(const char *text, char separator)
{
	return split(std::string_view(text), separator);
}

// Each non-empty line of text, without its newline.
std::vector<std::string_view> lines(std::string_view text);
std::vector<std::string_view> lines(std::string &&text) = delete;
inline std::vector<std::string_view> lines(const char *text)
{
	return lines(std::string_view(text));
}

// True if `word` is one of the space-separated words of `list` ("cpu io" holds "io", not "i").
bool has_word(std::string_view list, std::string_view word);

// For logs: control characters and non-ASCII bytes as \xHH, and at most `limit` bytes of the result, with
// "..." when cut. A value from a container can forge no log line.
std::string printable(std::string_view text, std::size_t limit = 256);

} // namespace vmmcg
