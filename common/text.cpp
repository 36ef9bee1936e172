#include "text.h"

namespace vmmcg {

std::string_view trim_end(std::string_view text)
{
	std::size_t end = text.find_last_not_of(std::string_view("\n \t\0", 4));
	return end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
}

std::vector<std::string_view> split(std::string_view text, char separator)
{
	std::vector<std::string_view> parts;
	for (;;) {
		std::size_t at = text.find(separator);
		parts.push_back(text.substr(0, at));
		if (at == std::string_view::npos)
			return parts;
		text.remove_prefix(at + 1);
	}
}

std::vector<std::string_view> lines(std::string_view text)
{
	std::vector<std::string_view> out;
	for (std::string_view line : split(text, '\n'))
		if (!line.empty())
			out.push_back(line);
	return out;
}

bool has_word(std::string_view list, std::string_view word)
{
	for (std::string_view part : split(list, ' '))
		if (part == word)
			return true;
	return false;
}

std::string printable(std::string_view text, std::size_t limit)
{
	static constexpr char hex[] = "0123456789abcdef";
	std::string out;
	for (char c : text) {
		auto byte = static_cast<unsigned char>(c);
		if (out.size() >= limit) {
			out += "...";
			break;
		}
		if (byte >= 0x20 && byte < 0x7f && c != '\\') {
			out += c;
			continue;
		}
		out += "\\x";
		out += hex[byte >> 4];
		out += hex[byte & 15];
	}
	return out;
}

} // namespace vmmcg
