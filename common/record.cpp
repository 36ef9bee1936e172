#include "record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

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
		throw InputError(std::string("record: '") + key +
				 "': field 'start_time': must be a non-negative integer");
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

// The record as nlohmann's compact dump() writes it, keys in its std::map order, without building the
// document: building, dumping and destroying it was 43% of createRuntime's instructions (README,
// "Performance"). A unit test holds this to nlohmann's output byte for byte.
std::string record_to_json(const Record &record)
{
	std::string out;
	out.reserve(1024 + 16 * record.vcpus.size());
	auto string = [&](std::string_view text) {
		bool plain = std::all_of(text.begin(), text.end(), [](char c) {
			auto byte = static_cast<unsigned char>(c);
			return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
		});
		if (plain)
			out.append("\"").append(text).append("\"");
		else // escapes, and refuses what is not UTF-8 (json::type_error), as the document did
			out += json(std::string(text)).dump();
	};
	auto strings = [&](const std::vector<std::string> &list) {
		out += '[';
		for (std::size_t i = 0; i < list.size(); ++i) {
			if (i)
				out += ',';
			string(list[i]);
		}
		out += ']';
	};
	auto boolean = [&](bool value) { out += value ? "true" : "false"; };
	auto process = [&](const std::optional<ProcessRef> &ref) {
		if (!ref) {
			out += "null";
			return;
		}
		out.append("{\"pid\":").append(std::to_string(ref->pid));
		out.append(",\"start_time\":").append(std::to_string(ref->start_time)).append("}");
	};

	out += "{\"adopted\":";
	strings(record.adopted);
	out += ",\"enabled\":";
	strings(record.enabled);
	out += ",\"host\":";
	string(to_string(record.layout.host));
	out += ",\"id\":";
	string(record.id);
	out += ",\"mode\":";
	string(to_string(record.layout.mode));
	out += ",\"qmp_socket\":";
	if (record.qmp_socket)
		string(*record.qmp_socket);
	else
		out += "null";
	out += ",\"relaxed\":";
	boolean(record.relaxed);
	out += ",\"saved\":{";
	bool first = true;
	for (const auto &[file, value] : record.saved) {
		out += first ? "" : ",";
		first = false;
		string(file);
		out += ':';
		string(value);
	}
	out += "},\"settler\":";
	process(record.settler);
	out += ",\"targets\":[";
	for (std::size_t t = 0; t < record.layout.targets.size(); ++t) {
		const Target &target = record.layout.targets[t];
		out += t ? ",{\"controllers\":" : "{\"controllers\":";
		string(target.controllers);
		out += ",\"create\":[";
		for (std::size_t d = 0; d < target.create.size(); ++d) {
			out += d ? ",{\"path\":" : "{\"path\":";
			string(target.create[d].path);
			out += ",\"shared\":";
			boolean(target.create[d].shared);
			out += ",\"threaded\":";
			boolean(target.create[d].threaded);
			out += '}';
		}
		out += "],\"mount\":";
		string(target.mount);
		out += ",\"overhead\":";
		string(target.overhead);
		out += ",\"sandbox\":";
		string(target.sandbox);
		out += ",\"v2\":";
		boolean(target.v2);
		out += ",\"vcpu\":";
		string(target.vcpu);
		out += '}';
	}
	out += "],\"vcpu_source\":";
	string(record.vcpu_source);
	out += ",\"vcpus\":[";
	for (std::size_t i = 0; i < record.vcpus.size(); ++i) {
		if (i)
			out += ',';
		out += std::to_string(record.vcpus[i]);
	}
	out.append("],\"version\":").append(std::to_string(record_version));
	out += ",\"vmm\":";
	process(record.vmm);
	out += "}\n";
	return out;
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
				CgroupDir entry{dir.at("path").get<std::string>(),
						dir.at("shared").get<bool>(), dir.at("threaded").get<bool>()};
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
			record.vcpus.push_back(
				static_cast<pid_t>(as_integer(tid, "vcpus", "record", 1, max_pid)));
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
		// record describes cgroups, which a power loss ends too, and lives in /run, which does not
		// outlive the boot; on a disk-backed directory it cost 0.6 ms, half of the floor's whole
		// stage.
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
			if (std::all_of(rest.begin(), rest.end(),
					[](char c) { return c >= '0' && c <= '9'; }))
				::unlinkat(::dirfd(d), entry->d_name, 0);
		}
		::closedir(d);
	}
	return result;
}

} // namespace vmmcg
