#include "records.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <set>

#include "text.h"

namespace vmmcg::ctl {

namespace {

std::vector<LoadedRecord> matching(const std::vector<LoadedRecord> &records,
				   const std::function<bool(const LoadedRecord &)> &match)
{
	std::vector<LoadedRecord> out;
	std::copy_if(records.begin(), records.end(), std::back_inserter(out), match);
	return out;
}

} // namespace

std::vector<LoadedRecord> load_records(const std::string &dir)
{
	std::vector<LoadedRecord> out;
	for (const auto &name : record_names(dir)) {
		LoadedRecord loaded{name, record_path(dir, name), std::nullopt, {}};
		try {
			// A record of version 1 is <id>.json and names itself by its id: both are the file's
			// name.
			loaded.record = read_record(dir, name, name);
			if (!loaded.record)
				loaded.error = "removed while it was read";
		} catch (const std::exception &e) {
			loaded.error = e.what();
		}
		if (loaded.record || loaded.error != "removed while it was read")
			out.push_back(std::move(loaded));
	}
	return out;
}

std::vector<LoadedRecord> select_records(const std::vector<LoadedRecord> &records, const std::string &target)
{
	auto by_name = matching(records, [&](const LoadedRecord &r) { return r.name == target; });
	if (!by_name.empty())
		return by_name;
	auto by_id =
		matching(records, [&](const LoadedRecord &r) { return r.record && r.record->id == target; });
	if (!by_id.empty() || target.empty())
		return by_id;
	return matching(records,
			[&](const LoadedRecord &r) { return r.record && r.record->id.starts_with(target); });
}

std::optional<std::string> ambiguity(const std::vector<LoadedRecord> &records, const std::string &target)
{
	std::set<std::string> ids;
	for (const auto &loaded : select_records(records, target)) {
		if (loaded.name == target || !loaded.record || loaded.record->id == target)
			return std::nullopt;
		ids.insert(loaded.record->id);
	}
	if (ids.size() < 2)
		return std::nullopt;
	std::string listed;
	std::size_t shown = 0;
	for (const auto &id : ids) {
		if (shown++ == 3) {
			listed += ", ...";
			break;
		}
		listed += (listed.empty() ? "" : ", ") + printable(id);
	}
	return "'" + printable(target) + "' is the start of the ids of " + std::to_string(ids.size()) +
	       " containers (" + listed + "): give more of the id";
}

} // namespace vmmcg::ctl
