#include "record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "io.h"
#include "json_fields.h"
#include "json_writer.h"
#include "paths.h"
#include "schema.h"
#include "text.h"
#include "unique_fd.h"

namespace vmmcg {

namespace {

constexpr std::size_t max_record_size = 4 << 20;
constexpr std::int64_t max_pid = 1 << 22; // PID_MAX_LIMIT
constexpr std::string_view what = "record";

using nlohmann::json;

// Every path the record hands to the cgroupfs layer is checked here too, not only there.
std::string cgroup_path(const Field &field, bool root_allowed = false)
{
	std::string path = field.string();
	if (!is_clean_absolute(path) || (!root_allowed && path == "/"))
		field.fail("'" + printable(path) + "' is not a clean absolute cgroup path");
	return path;
}

std::vector<std::string> cgroup_paths(const Field &field)
{
	std::vector<std::string> paths;
	for (std::size_t i = 0; i < field.list().size(); ++i)
		paths.push_back(cgroup_path(field.item(i)));
	return paths;
}

std::vector<std::string> names_from(const Field &field, std::initializer_list<std::string_view> allowed)
{
	std::vector<std::string> names = field.strings(true);
	for (const auto &name : names)
		if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
			field.fail("'" + printable(name) + "' is not a controller the hooks use");
	return names;
}

const Schema<ProcessRef, 2> process_fields = {{
	{"pid", Presence::required,
	 [](const Field &f, ProcessRef &p) { p.pid = static_cast<pid_t>(f.integer(1, max_pid)); },
	 [](JsonWriter &w, const ProcessRef &p) { w.integer(p.pid); }},
	{"start_time", Presence::required,
	 [](const Field &f, ProcessRef &p) { p.start_time = f.non_negative(UINT64_MAX); },
	 [](JsonWriter &w, const ProcessRef &p) { w.unsigned_integer(p.start_time); }},
}};

void write_process(JsonWriter &out, const std::optional<ProcessRef> &ref)
{
	if (ref)
		write_object(out, *ref, process_fields);
	else
		out.null();
}

std::optional<ProcessRef> read_process(const Field &field)
{
	ProcessRef ref;
	read_object(field.object(), what, field.key(), ref, process_fields);
	return ref;
}

using cgroup_v1::Hierarchy;

const Schema<Hierarchy, 6> hierarchy_fields = {{
	{"mount", Presence::required, [](const Field &f, Hierarchy &h) { h.mount = cgroup_path(f); },
	 [](JsonWriter &w, const Hierarchy &h) { w.string(h.mount); }},
	{"controllers", Presence::required,
	 [](const Field &f, Hierarchy &h) {
		 h.controllers = names_from(f, {"cpu", "cpuacct", "cpuset"});
	 },
	 [](JsonWriter &w, const Hierarchy &h) { w.strings(h.controllers); }},
	{"proc_key", Presence::required,
	 [](const Field &f, Hierarchy &h) { h.proc_key = f.non_empty_string(); },
	 [](JsonWriter &w, const Hierarchy &h) { w.string(h.proc_key); }},
	{"sandbox", Presence::required,
	 [](const Field &f, Hierarchy &h) { h.sandbox = cgroup_path(f, true); },
	 [](JsonWriter &w, const Hierarchy &h) { w.string(h.sandbox); }},
	{"overhead", Presence::required, [](const Field &f, Hierarchy &h) { h.overhead = cgroup_path(f); },
	 [](JsonWriter &w, const Hierarchy &h) { w.string(h.overhead); }},
	{"shared", Presence::required, [](const Field &f, Hierarchy &h) { h.shared = cgroup_paths(f); },
	 [](JsonWriter &w, const Hierarchy &h) { w.strings(h.shared); }},
}};

const Schema<cgroup_v1::Layout, 1> v1_fields = {{
	{"hierarchies", Presence::required,
	 [](const Field &f, cgroup_v1::Layout &l) {
		 for (std::size_t i = 0; i < f.list().size(); ++i) {
			 Field item = f.item(i);
			 read_object(item.object(), what, item.key(), l.hierarchies.emplace_back(),
				     hierarchy_fields);
		 }
	 },
	 [](JsonWriter &w, const cgroup_v1::Layout &l) {
		 w.begin_array();
		 for (const auto &h : l.hierarchies)
			 write_object(w, h, hierarchy_fields);
		 w.end_array();
	 }},
}};

const Schema<cgroup_v2::Layout, 5> v2_fields = {{
	{"mount", Presence::required, [](const Field &f, cgroup_v2::Layout &l) { l.mount = cgroup_path(f); },
	 [](JsonWriter &w, const cgroup_v2::Layout &l) { w.string(l.mount); }},
	{"sandbox", Presence::required,
	 [](const Field &f, cgroup_v2::Layout &l) { l.sandbox = cgroup_path(f); },
	 [](JsonWriter &w, const cgroup_v2::Layout &l) { w.string(l.sandbox); }},
	{"enabled", Presence::required,
	 [](const Field &f, cgroup_v2::Layout &l) {
		 l.enabled = names_from(f, {"cpu", "cpuset"});
	 },
	 [](JsonWriter &w, const cgroup_v2::Layout &l) { w.strings(l.enabled); }},
	{"saved", Presence::required,
	 [](const Field &f, cgroup_v2::Layout &l) {
		 l.saved = f.string_map();
		 for (const auto &[file, value] : l.saved)
			 if (file != "cpu.max")
				 f.fail("'" + printable(file) + "' is not a file the hooks save");
	 },
	 [](JsonWriter &w, const cgroup_v2::Layout &l) {
		 w.begin_object();
		 for (const auto &[file, value] : l.saved)
			 w.key(file).string(value);
		 w.end_object();
	 }},
	{"relaxed", Presence::required, [](const Field &f, cgroup_v2::Layout &l) { l.relaxed = f.boolean(); },
	 [](JsonWriter &w, const cgroup_v2::Layout &l) { w.boolean(l.relaxed); }},
}};

template <typename L, std::size_t N>
void write_part(JsonWriter &out, const CgroupLayout &layout, const Schema<L, N> &schema)
{
	if (const L *part = std::get_if<L>(&layout))
		write_object(out, *part, schema);
	else
		out.null();
}

template <typename L, std::size_t N>
void read_part(const Field &field, Record &record, const Schema<L, N> &schema)
{
	if (!std::holds_alternative<std::monostate>(record.cgroups))
		field.fail("a record holds the cgroups of one version only");
	L part;
	read_object(field.object(), what, field.key(), part, schema);
	record.cgroups = std::move(part);
}

Mode mode_from(const Field &field)
{
	auto mode = parse_mode(field.string());
	if (!mode)
		field.fail("not a mode");
	return *mode;
}

HostMode host_from(const Field &field)
{
	auto host = parse_host_mode(field.string());
	if (!host)
		field.fail("not a host mode");
	return *host;
}

Record::Phase phase_from(const Field &field)
{
	std::string text = field.string();
	if (text == "creating")
		return Record::Phase::creating;
	if (text != "created")
		field.fail("not a phase");
	return Record::Phase::created;
}

const Schema<Record, 16> record_fields = {{
	{"version", Presence::required, [](const Field &, Record &) {}, // checked before the rest
	 [](JsonWriter &w, const Record &) { w.integer(record_version); }},
	{"id", Presence::required, [](const Field &f, Record &r) { r.id = f.string(); },
	 [](JsonWriter &w, const Record &r) { w.string(r.id); }},
	{"name", Presence::required,
	 [](const Field &f, Record &r) {
		 r.name = f.string();
		 if (!is_valid_container_id(r.name, max_instance_name_size))
			 f.fail("not an instance name");
	 },
	 [](JsonWriter &w, const Record &r) { w.string(r.name); }},
	{"bundle", Presence::required, [](const Field &f, Record &r) { r.bundle = f.string(); },
	 [](JsonWriter &w, const Record &r) { w.string(r.bundle); }},
	{"phase", Presence::required, [](const Field &f, Record &r) { r.phase = phase_from(f); },
	 [](JsonWriter &w, const Record &r) {
		 w.string(r.phase == Record::Phase::creating ? "creating" : "created");
	 }},
	{"container", Presence::optional, [](const Field &f, Record &r) { r.container = read_process(f); },
	 [](JsonWriter &w, const Record &r) { write_process(w, r.container); }},
	{"mode", Presence::required, [](const Field &f, Record &r) { r.mode = mode_from(f); },
	 [](JsonWriter &w, const Record &r) { w.string(to_string(r.mode)); }},
	{"host", Presence::required, [](const Field &f, Record &r) { r.host = host_from(f); },
	 [](JsonWriter &w, const Record &r) { w.string(to_string(r.host)); }},
	{"v1", Presence::optional, [](const Field &f, Record &r) { read_part(f, r, v1_fields); },
	 [](JsonWriter &w, const Record &r) { write_part(w, r.cgroups, v1_fields); }},
	{"v2", Presence::optional, [](const Field &f, Record &r) { read_part(f, r, v2_fields); },
	 [](JsonWriter &w, const Record &r) { write_part(w, r.cgroups, v2_fields); }},
	{"qmp_socket", Presence::optional,
	 [](const Field &f, Record &r) {
		 r.qmp_socket = f.string();
		 if (!is_clean_absolute(*r.qmp_socket) || *r.qmp_socket == "/")
			 f.fail("not a clean absolute path");
	 },
	 [](JsonWriter &w, const Record &r) { w.optional_string(r.qmp_socket); }},
	{"vmm", Presence::optional, [](const Field &f, Record &r) { r.vmm = read_process(f); },
	 [](JsonWriter &w, const Record &r) { write_process(w, r.vmm); }},
	{"vcpus", Presence::required,
	 [](const Field &f, Record &r) {
		 for (std::size_t i = 0; i < f.list().size(); ++i)
			 r.vcpus.push_back(static_cast<pid_t>(f.item(i).integer(1, max_pid)));
	 },
	 [](JsonWriter &w, const Record &r) {
		 w.begin_array();
		 for (pid_t tid : r.vcpus)
			 w.integer(tid);
		 w.end_array();
	 }},
	{"vcpu_source", Presence::required, [](const Field &f, Record &r) { r.vcpu_source = f.string(); },
	 [](JsonWriter &w, const Record &r) { w.string(r.vcpu_source); }},
	{"settler", Presence::optional, [](const Field &f, Record &r) { r.settler = read_process(f); },
	 [](JsonWriter &w, const Record &r) { write_process(w, r.settler); }},
	{"watcher", Presence::optional, [](const Field &f, Record &r) { r.watcher = read_process(f); },
	 [](JsonWriter &w, const Record &r) { write_process(w, r.watcher); }},
}};

std::string temp_prefix(const std::string &id)
{
	return "." + id + ".json.";
}

// ".<id>.json.<pid>": only digits after the prefix, or another container's temp file (id "abc.json" has
// ".abc.json.json.<pid>") would match.
bool is_temp_file_of(std::string_view name, const std::string &prefix)
{
	if (!name.starts_with(prefix) || name.size() == prefix.size())
		return false;
	std::string_view rest = name.substr(prefix.size());
	return std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace

std::string record_to_json(const Record &record)
{
	JsonWriter out;
	write_object(out, record, record_fields);
	return out.take() + "\n";
}

Record record_from_json(const std::string &text)
{
	json doc = parse_json_object(text, what);
	std::int64_t version = need_field(doc, "version", what).integer(1, record_version);
	if (version == 1)
		return record_from_v1_json(doc);
	Record record;
	read_object(doc, what, "", record, record_fields);
	if (record.mode == Mode::split && std::holds_alternative<std::monostate>(record.cgroups))
		throw InputError("record: split mode without the cgroups of either version");
	return record;
}

std::string record_path(const std::string &dir, const std::string &name)
{
	return join_path(dir, name + ".json");
}

namespace {

// Writes the record to a temp file and moves it to its path: rename() makes the write atomic for readers
// and for a hook killed half-way; RENAME_NOREPLACE makes the first write exclusive. No fsync(): the record
// describes cgroups, which a power loss ends too, and lives in /run, which does not outlive the boot; on a
// disk-backed directory it cost 0.6 ms, half of the floor's whole stage.
bool put_record(const std::string &dir, const Record &record, unsigned rename_flags)
{
	if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
		throw_errno("creating record directory " + dir);
	std::string path = record_path(dir, record.name);
	std::string temp = join_path(dir, temp_prefix(record.name) + std::to_string(::getpid()));
	UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!fd.valid())
		throw_errno("creating " + temp);
	try {
		write_all(fd.get(), record_to_json(record), "writing " + temp);
		fd.reset();
		if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), rename_flags) == 0) {
			if (rename_flags & RENAME_EXCHANGE)
				::unlink(temp.c_str()); // now the record as it was
			return true;
		}
		// A record_dir on a file system without RENAME_EXCHANGE: replaced where it is, not atomically
		// with that check (the window a late write has there is the one of that check).
		if (errno == EINVAL && (rename_flags & RENAME_EXCHANGE)) {
			if (::access(path.c_str(), F_OK) != 0) {
				::unlink(temp.c_str());
				return false;
			}
			if (::rename(temp.c_str(), path.c_str()) == 0)
				return true;
		}
		// EEXIST: RENAME_NOREPLACE found a record; ENOENT: RENAME_EXCHANGE found none (or poststop's
		// removal took the temp file too)
		if (errno != EEXIST && !(errno == ENOENT && (rename_flags & RENAME_EXCHANGE)))
			throw_errno("renaming " + temp + " to " + path);
	} catch (...) {
		::unlink(temp.c_str());
		throw;
	}
	::unlink(temp.c_str());
	return false;
}

std::optional<Record> read_record_file(const std::string &path, const std::string &name, bool by_id)
{
	try {
		std::optional<std::string> text = read_input_file(path, max_record_size, true);
		if (!text)
			return std::nullopt;
		Record record = record_from_json(*text);
		if ((by_id ? record.id : record.name) != name)
			throw InputError("record: holds '" + printable(by_id ? record.id : record.name) +
					 "'");
		return record;
	} catch (const InputError &e) {
		throw HostError((std::string_view(e.what()).starts_with(path) ? "" : path + ": ") + e.what());
	}
}

} // namespace

void write_record(const std::string &dir, const Record &record)
{
	put_record(dir, record, 0);
}

bool replace_record(const std::string &dir, const Record &record)
{
	return put_record(dir, record, RENAME_EXCHANGE);
}

namespace {

// The first write, as an unnamed file (O_TMPFILE) linked to its path once complete: linkat fails with
// EEXIST where a record is, as RENAME_NOREPLACE does, and a writer killed midway leaves nothing (with a
// named temp file, a createRuntime killed before its rename left that file, and no record to clean it up
// by). nullopt where the file system has no O_TMPFILE: the caller writes a temp file and renames it.
std::optional<bool> link_new_record(const std::string &dir, const Record &record)
{
	if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
		throw_errno("creating record directory " + dir);
	std::string path = record_path(dir, record.name);
	UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
	if (!fd.valid() && (errno == EOPNOTSUPP || errno == EISDIR))
		return std::nullopt;
	if (!fd.valid())
		throw_errno("creating a record in " + dir);
	write_all(fd.get(), record_to_json(record), "writing " + path);
	std::string self = "/proc/self/fd/" + std::to_string(fd.get());
	if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0)
		return true;
	if (errno == EEXIST)
		return false;
	throw_errno("linking " + path);
}

} // namespace

bool create_record(const std::string &dir, const Record &record)
{
	if (std::optional<bool> linked = link_new_record(dir, record))
		return *linked;
	return put_record(dir, record, RENAME_NOREPLACE);
}

std::optional<Record> read_record(const std::string &dir, const std::string &name, const std::string &id)
{
	if (auto record = read_record_file(record_path(dir, name), name, false))
		return record;
	auto legacy = read_record_file(record_path(dir, id), id, true);
	return legacy && legacy->name == id ? legacy : std::nullopt;
}

std::error_code remove_record(const std::string &dir, const std::string &name)
{
	std::error_code result;
	if (::unlink(record_path(dir, name).c_str()) != 0 && errno != ENOENT)
		result = errno_code();
	// Temp files of writers that were killed between open and rename.
	if (DIR *d = ::opendir(dir.c_str())) {
		std::string prefix = temp_prefix(name);
		while (struct dirent *entry = ::readdir(d))
			if (is_temp_file_of(entry->d_name, prefix))
				::unlinkat(::dirfd(d), entry->d_name, 0);
		::closedir(d);
	}
	return result;
}

std::vector<std::string> record_names(const std::string &dir)
{
	std::vector<std::string> names;
	if (DIR *d = ::opendir(dir.c_str())) {
		while (struct dirent *entry = ::readdir(d)) {
			std::string_view file(entry->d_name);
			if (file.starts_with('.') || !file.ends_with(".json"))
				continue;
			file.remove_suffix(5);
			if (is_valid_container_id(file, max_instance_name_size))
				names.emplace_back(file);
		}
		::closedir(d);
	}
	std::sort(names.begin(), names.end());
	return names;
}

} // namespace vmmcg
