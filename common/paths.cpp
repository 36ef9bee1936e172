#include "paths.h"

namespace vmmcg {

bool is_clean_absolute(std::string_view path)
{
	if (path.empty() || path.front() != '/')
		return false;
	if (path == "/")
		return true;
	if (path.back() == '/')
		return false;
	std::string_view rest = path.substr(1);
	for (;;) {
		std::size_t slash = rest.find('/');
		std::string_view part = rest.substr(0, slash);
		if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos)
			return false;
		if (slash == std::string_view::npos)
			return true;
		rest.remove_prefix(slash + 1);
	}
}

std::string parent_path(std::string_view path)
{
	std::size_t slash = path.rfind('/');
	if (slash == 0 || slash == std::string_view::npos)
		return "/";
	return std::string(path.substr(0, slash));
}

std::string join_path(std::string_view base, std::string_view name)
{
	std::string out(base);
	if (out.empty() || out.back() != '/')
		out += '/';
	out += name;
	return out;
}

bool is_valid_container_id(std::string_view id, std::size_t max_size)
{
	if (id.empty() || id.size() > max_size || id == "." || id == "..")
		return false;
	for (char c : id) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '+' || c == '.' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

} // namespace vmmcg
