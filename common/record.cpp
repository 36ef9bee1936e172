#include "record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "io.h"
#include "json_fields.h"
#include "paths.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

constexpr int record_version = 1;
constexpr std::size_t max_record_size = 4 << 20;
constexpr std::int64_t max_pid = 1 << 22; // PID_MAX_LIMIT

using nlohmann::json;

json process_to_json(const ProcessRef &ref)
{
	return {{"pid", ref.pid}, {"start_time", ref.start_time}};
}

std::optional<ProcessRef> process_from_json(const json &doc, const char *key)
{
	auto it = doc.find(key);
	if (it == doc.end() || it->is_null())
		return std::nullopt;
	if (!it->is_object())
		throw InputError(std::string("record: field '") + key + "': must be an object");
	auto pid = as_integer(it->at("pid"), "pid", std::string("record: '") + key + "'", 1, max_pid);
	const json &start_time = it->at("start_time");
	if (!start_time.is_number_unsigned())
		throw InputError(std::string("record: '") + key + "': field 'start_time': must be a non-negative integer");
	return ProcessRef{static_cast<pid_t>(pid), start_time.get<std::uint64_t>()};
}

const json &array_field(const json &obj, const char *key)
{
	const json &value = obj.at(key);
	if (!value.is_array())
		throw InputError(std::string("record: field '") + key + "': must be a list");
	return value;
}

// Every path the record hands to the cgroupfs layer is checked here too, not only there.
std::string cgroup_path(const json &item, const char *key)
{
	std::string path = item.at(key).get<std::string>();
	if (!is_clean_absolute(path))
		throw InputError(std::string("record: bad path in '") + key + "': '" + path + "'");
	return path;
}

std::string temp_prefix(const std::string &id)
{
	return "." + id + ".json.";
}

void write_all(int fd, const std::string &text, const std::string &path)
{
	std::size_t done = 0;
	while (done < text.size()) {
		ssize_t n = ::write(fd, text.data() + done, text.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			throw_errno("writing " + path);
		done += static_cast<std::size_t>(n);
	}
}

} // namespace

std::string record_path(const std::string &dir, const std::string &id)
{
	return join_path(dir, id + ".json");
}

std::string record_to_json(const Record &record)
{
	json targets = json::array();
	for (const auto &target : record.layout.targets) {
		json create = json::array();
		for (const auto &dir : target.create)
			create.push_back({{"path", dir.path}, {"shared", dir.shared}, {"threaded", dir.threaded}});
		targets.push_back({{"mount", target.mount},
				   {"controllers", target.controllers},
				   {"v2", target.v2},
				   {"sandbox", target.sandbox},
				   {"vcpu", target.vcpu},
				   {"overhead", target.overhead},
				   {"create", create}});
	}
	json doc = {{"version", record_version},
		    {"id", record.id},
		    {"mode", to_string(record.layout.mode)},
		    {"host", to_string(record.layout.host)},
		    {"targets", targets},
		    {"adopted", record.adopted},
		    {"enabled", record.enabled},
		    {"saved", record.saved},
		    {"relaxed", record.relaxed},
		    {"qmp_socket", record.qmp_socket ? json(*record.qmp_socket) : json()},
		    {"vmm", record.vmm ? process_to_json(*record.vmm) : json()},
		    {"vcpus", record.vcpus},
		    {"vcpu_source", record.vcpu_source},
		    {"settler", record.settler ? process_to_json(*record.settler) : json()}};
	return doc.dump() + "\n"; // compact: pretty-printing was a third of createRuntime's user time; use jq
}

Record record_from_json(const std::string &text)
{
	json doc = parse_json_object(text, "record");
	try {
		if (as_integer(doc.at("version"), "version", "record", 0, 1 << 20) != record_version)
			throw InputError("record: unsupported version");
		Record record;
		record.id = doc.at("id").get<std::string>();
		auto mode = parse_mode(doc.at("mode").get<std::string>());
		auto host = parse_host_mode(doc.at("host").get<std::string>());
		if (!mode || !host)
			throw InputError("record: bad mode or host");
		record.layout.mode = *mode;
		record.layout.host = *host;
		for (const auto &item : array_field(doc, "targets")) {
			Target target;
			target.mount = cgroup_path(item, "mount");
			target.controllers = item.at("controllers").get<std::string>();
			target.v2 = item.at("v2").get<bool>();
			target.sandbox = cgroup_path(item, "sandbox");
			target.vcpu = cgroup_path(item, "vcpu");
			target.overhead = cgroup_path(item, "overhead");
			for (const auto &dir : array_field(item, "create")) {
				CgroupDir entry{dir.at("path").get<std::string>(), dir.at("shared").get<bool>(),
						dir.at("threaded").get<bool>()};
				if (!is_clean_absolute(entry.path) || entry.path == "/")
					throw InputError("record: bad cgroup path '" + entry.path + "'");
				target.create.push_back(std::move(entry));
			}
			record.layout.targets.push_back(std::move(target));
		}
		record.adopted = doc.at("adopted").get<std::vector<std::string>>();
		record.enabled = doc.at("enabled").get<std::vector<std::string>>();
		record.saved = doc.at("saved").get<std::map<std::string, std::string>>();
		record.relaxed = doc.at("relaxed").get<bool>();
		if (auto it = doc.find("qmp_socket"); it != doc.end() && !it->is_null()) {
			record.qmp_socket = it->get<std::string>();
			if (!is_clean_absolute(*record.qmp_socket))
				throw InputError("record: bad qmp_socket");
		}
		for (const auto &name : record.enabled)
			if (name != "cpu" && name != "cpuset")
				throw InputError("record: bad controller '" + name + "'");
		for (const auto &[file, value] : record.saved)
			if (file != "cpu.max")
				throw InputError("record: bad saved file '" + file + "'");
		record.vmm = process_from_json(doc, "vmm");
		for (const auto &tid : array_field(doc, "vcpus"))
			record.vcpus.push_back(static_cast<pid_t>(as_integer(tid, "vcpus", "record", 1, max_pid)));
		record.vcpu_source = doc.at("vcpu_source").get<std::string>();
		record.settler = process_from_json(doc, "settler");
		return record;
	} catch (const json::exception &e) {
		throw InputError(std::string("record: ") + e.what());
	}
}

void write_record(const std::string &dir, const Record &record)
{
	if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
		throw_errno("creating record directory " + dir);
	std::string path = record_path(dir, record.id);
	std::string temp = join_path(dir, temp_prefix(record.id) + std::to_string(::getpid()));
	UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!fd.valid())
		throw_errno("creating " + temp);
	try {
		// rename() makes the write atomic for readers and for a hook killed half-way. No fsync(): the
		// record describes cgroups, which a power loss ends too, and lives in /run, which does not outlive
		// the boot; on a disk-backed directory it cost 0.6 ms, half of the floor's whole stage.
		write_all(fd.get(), record_to_json(record), temp);
		fd.reset();
		if (::rename(temp.c_str(), path.c_str()) != 0)
			throw_errno("renaming " + temp + " to " + path);
	} catch (...) {
		::unlink(temp.c_str());
		throw;
	}
}

std::optional<Record> read_record(const std::string &dir, const std::string &id)
{
	std::string path = record_path(dir, id);
	std::error_code ec;
	std::string text = read_file(path, max_record_size, ec);
	if (ec == std::errc::no_such_file_or_directory)
		return std::nullopt;
	if (ec)
		throw InputError(path + ": cannot be read: " + ec.message());
	try {
		Record record = record_from_json(text);
		if (record.id != id)
			throw InputError("record: holds id '" + record.id + "'");
		return record;
	} catch (const InputError &e) {
		throw InputError(path + ": " + e.what());
	}
}

std::error_code remove_record(const std::string &dir, const std::string &id)
{
	std::error_code result;
	if (::unlink(record_path(dir, id).c_str()) != 0 && errno != ENOENT)
		result = errno_code();
	// Temp files of writers that were killed between open and rename.
	if (DIR *d = ::opendir(dir.c_str())) {
		std::string prefix = temp_prefix(id);
		while (struct dirent *entry = ::readdir(d)) {
			// ".<id>.json.<pid>": only digits after the prefix, or another container's temp file
			// (id "abc.json" has ".abc.json.json.<pid>") would match.
			std::string_view name(entry->d_name);
			if (!name.starts_with(prefix) || name.size() == prefix.size())
				continue;
			std::string_view rest = name.substr(prefix.size());
			if (std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; }))
				::unlinkat(::dirfd(d), entry->d_name, 0);
		}
		::closedir(d);
	}
	return result;
}

} // namespace vmmcg
