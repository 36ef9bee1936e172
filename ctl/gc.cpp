#include "gc.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <variant>

#include <spdlog/spdlog.h>

#include "cgroupfs.h"
#include "cleanup.h"
#include "errors.h"
#include "host.h"
#include "log.h"
#include "paths.h"
#include "procfs.h"
#include "text.h"

namespace vmmcg::ctl {

namespace {

constexpr std::string_view beside_prefix = "vmm-overhead-";

std::optional<CgroupMount> try_open(const std::string &path)
{
	try {
		return CgroupMount::open(path);
	} catch (const std::exception &) {
		return std::nullopt;
	}
}

bool holds_tasks(const std::optional<CgroupMount> &mount, const std::string &cgroup, const char *file)
{
	std::error_code ec;
	return mount && !mount->read_ids(cgroup, file, ec).empty();
}

// Whether S, O or S's threaded children hold a task (a mount that cannot be opened holds none that can be
// seen: sandbox_presence has said why, and gc leaves such a record alone).
bool tasks_inside(const Record &record)
{
	bool inside = false;
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups))
		for (const auto &h : v1->hierarchies) {
			auto mount = try_open(h.mount);
			inside = inside || holds_tasks(mount, h.sandbox, "tasks") ||
				 holds_tasks(mount, h.overhead, "tasks");
		}
	if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups)) {
		auto mount = try_open(v2->mount);
		inside = holds_tasks(mount, v2->sandbox, "cgroup.procs");
		for (const auto &cgroup : {v2->sandbox, v2->vcpu(), v2->overhead()})
			inside = inside || holds_tasks(mount, cgroup, "cgroup.threads");
	}
	return inside;
}

// The executable of every settler and watcher: poststart's binary, executed again (settler.h).
constexpr std::string_view helper_exe = "vmm-cgroup-poststart";

// Whether the record's settler or watcher runs; the reason to leave it alone if it is not poststart's.
bool helper_alive(const std::optional<ProcessRef> &helper, const char *what, const ProcFs &proc,
		  GcFacts &facts)
{
	if (!helper || !proc.alive(*helper))
		return false;
	std::string exe = proc.exe_name(helper->pid);
	if (exe != helper_exe && facts.foreign_helper.empty())
		facts.foreign_helper = std::string("its ") + what + " (pid " + std::to_string(helper->pid) +
				       ") is " + (exe.empty() ? "unknown" : printable(exe)) + ", not " +
				       std::string(helper_exe);
	return true;
}

// What clean_up would remove or stop of a record: O in each v1 hierarchy, S on v2 (its children, its
// controllers, its cpu.max), the settler and the watcher.
std::vector<std::string> claims_of(const Record &record)
{
	std::vector<std::string> out;
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&record.cgroups))
		for (const auto &h : v1->hierarchies)
			out.push_back(h.mount + h.overhead);
	if (const auto *v2 = std::get_if<cgroup_v2::Layout>(&record.cgroups))
		out.push_back(v2->mount + v2->sandbox);
	for (const auto &helper : {record.settler, record.watcher})
		if (helper)
			out.push_back("pid " + std::to_string(helper->pid) + " (start time " +
				      std::to_string(helper->start_time) + ")");
	return out;
}

using Claims = std::map<std::string, std::size_t>; // claim -> how many records name it

Claims all_claims(const std::vector<LoadedRecord> &records)
{
	Claims claims;
	for (const auto &loaded : records)
		if (loaded.record)
			for (const auto &claim : claims_of(*loaded.record))
				++claims[claim];
	return claims;
}

GcFacts facts_of(const Record &record, const ProcFs &proc, const Claims &claims)
{
	GcFacts facts;
	facts.container_known = record.container.has_value();
	facts.container_alive = record.container && proc.alive(*record.container);
	facts.vmm_alive = record.vmm && proc.alive(*record.vmm);
	facts.settler_alive = helper_alive(record.settler, "settler", proc, facts);
	facts.watcher_alive = helper_alive(record.watcher, "watcher", proc, facts);
	for (const auto &claim : claims_of(record))
		if (auto it = claims.find(claim); it != claims.end() && it->second > 1) {
			facts.shared_claim = claim;
			break;
		}
	SandboxPresence sandbox = sandbox_presence(record);
	facts.cgroups_known = std::holds_alternative<cgroup_v1::Layout>(record.cgroups) ||
			      std::holds_alternative<cgroup_v2::Layout>(record.cgroups);
	facts.sandbox_exists = sandbox.exists;
	facts.mount_refused = sandbox.refused;
	facts.tasks_inside = tasks_inside(record);
	return facts;
}

GcEntry collect(const std::string &record_dir, Record record, const Claims &claims, const GcOptions &options)
{
	GcEntry entry{record.id, record.name, decide_gc(facts_of(record, ProcFs(), claims)), 0};
	if (!entry.decision.remove || options.dry_run)
		return entry;
	set_log_container(record.id);
	entry.failures = clean_up(record_dir, record).failures;
	spdlog::info("gc: {}: {}", entry.decision.reason,
		     entry.failures ? "not everything removed" : "removed");
	set_log_container("?");
	return entry;
}

// ---- orphans

// A directory whose children may be overhead cgroups: beside a recorded S (named vmm-overhead-<instance>)
// or an overhead root (named <instance>).
struct Place {
	std::string mount;
	std::string parent;
	std::string prefix;
	auto operator<=>(const Place &) const = default;
};

std::set<Place> places_to_look(const Config &config, const std::vector<LoadedRecord> &records)
{
	std::set<Place> places;
	for (const auto &loaded : records) {
		const auto *v1 =
			loaded.record ? std::get_if<cgroup_v1::Layout>(&loaded.record->cgroups) : nullptr;
		for (const auto &h : v1 ? v1->hierarchies : std::vector<cgroup_v1::Hierarchy>{}) {
			places.insert({h.mount, parent_path(h.sandbox), std::string(beside_prefix)});
			if (!h.shared.empty())
				places.insert({h.mount, h.shared.back(), ""});
		}
	}
	HostMode host = detect_host_mode();
	if (host == HostMode::v2)
		return places; // O lives inside S there
	Mounts mounts = discover_mounts(host);
	for (const auto &controller : config.overhead_controllers)
		if (auto it = mounts.v1.find(controller); it != mounts.v1.end())
			places.insert({it->second, config.overhead_root, ""});
	return places;
}

std::vector<std::string> child_dirs(const std::string &dir)
{
	std::vector<std::string> out;
	DIR *d = ::opendir(dir.c_str());
	if (!d)
		return out;
	while (struct dirent *entry = ::readdir(d))
		if (entry->d_type == DT_DIR && entry->d_name[0] != '.')
			out.emplace_back(entry->d_name);
	::closedir(d);
	std::sort(out.begin(), out.end());
	return out;
}

// Named: a readable record lists it as O, or a record file (readable or not) has its instance name.
struct Named {
	std::set<std::pair<std::string, std::string>> overheads; // mount, path
	std::set<std::string> instances;
};

Named named_by(const std::vector<LoadedRecord> &records)
{
	Named named;
	for (const auto &loaded : records) {
		named.instances.insert(loaded.name);
		const auto *v1 =
			loaded.record ? std::get_if<cgroup_v1::Layout>(&loaded.record->cgroups) : nullptr;
		for (const auto &h : v1 ? v1->hierarchies : std::vector<cgroup_v1::Hierarchy>{})
			named.overheads.insert({h.mount, h.overhead});
	}
	return named;
}

void look_in(const Place &place, const Named &named, std::vector<Orphan> &out)
{
	auto mount = try_open(place.mount);
	if (!mount)
		return;
	for (const auto &child : child_dirs(mount->describe(place.parent))) {
		if (!child.starts_with(place.prefix))
			continue;
		std::string instance = child.substr(place.prefix.size());
		std::string path = join_path(place.parent, child);
		if (!is_valid_container_id(instance, max_instance_name_size) ||
		    named.instances.count(instance) || named.overheads.count({place.mount, path}))
			continue;
		bool empty = !holds_tasks(mount, path, "tasks") && child_dirs(mount->describe(path)).empty();
		out.push_back({place.mount, path, instance, empty, false, {}, {}});
	}
}

// A createRuntime that started since the records were read has written its record before its first mkdir:
// an overhead cgroup whose record exists now is that instance's.
void remove_orphan(const std::string &record_dir, Orphan &orphan)
{
	if (::access(record_path(record_dir, orphan.instance).c_str(), F_OK) == 0) {
		orphan.left_alone = "a record of its name appeared meanwhile";
		spdlog::info("gc: orphan {}: {}: left alone", orphan.mount + orphan.path, orphan.left_alone);
		return;
	}
	auto mount = try_open(orphan.mount);
	std::error_code ec = mount ? mount->remove_dir(orphan.path) : errno_code(ENOENT);
	orphan.removed = !ec || ec == std::errc::no_such_file_or_directory;
	if (!orphan.removed)
		orphan.error = ec.message();
	spdlog::info("gc: orphan {}: {}", orphan.mount + orphan.path,
		     orphan.removed ? "removed" : "not removed: " + orphan.error);
}

std::vector<Orphan> find_orphans(const std::set<Place> &places, const std::vector<LoadedRecord> &records)
{
	Named named = named_by(records);
	std::vector<Orphan> orphans;
	for (const auto &place : places)
		look_in(place, named, orphans);
	return orphans;
}

std::string orphan_line(const Orphan &orphan, const GcOptions &options)
{
	std::string state = orphan.empty ? "empty" : "holds tasks or cgroups: left alone";
	if (orphan.removed)
		state += ", removed";
	else if (!orphan.error.empty())
		state += ", NOT removed: " + orphan.error;
	else if (!orphan.left_alone.empty())
		state += ", left alone: " + orphan.left_alone;
	else if (orphan.empty && options.force_orphans && options.dry_run)
		state += ", would be removed";
	return "  " + printable(orphan.mount + orphan.path) + "  " + state + "\n";
}

} // namespace

namespace {

GcDecision gone_because(const GcFacts &facts)
{
	if (facts.cgroups_known && !facts.sandbox_exists)
		return {true, "S no longer exists in any hierarchy"};
	if (facts.container_known)
		return {true, "the container's process and its VMM are gone, and poststop did not run"};
	return {false, "the record names no container process and S exists: it cannot be told gone"};
}

} // namespace

GcDecision decide_gc(const GcFacts &facts)
{
	if (facts.container_alive)
		return {false, "the container's process is alive"};
	if (facts.vmm_alive)
		return {false, "its VMM is alive"};
	if (facts.tasks_inside)
		return {false, "its cgroups still hold tasks"};
	if (!facts.mount_refused.empty())
		return {false, facts.mount_refused + ": nothing can be checked there, nothing is removed"};
	if (!facts.shared_claim.empty())
		return {false, printable(facts.shared_claim) + " is named by another record too: left alone"};
	if (!facts.foreign_helper.empty())
		return {false, facts.foreign_helper + ": left alone"};
	GcDecision decision = gone_because(facts);
	if (decision.remove && (facts.settler_alive || facts.watcher_alive))
		decision.reason += facts.settler_alive ? "; its settler still runs: stopped first"
						       : "; its watcher still runs: stopped first";
	return decision;
}

GcReport run_gc(const Config &config, const GcOptions &options)
{
	GcReport report;
	report.options = options;
	std::vector<LoadedRecord> records = load_records(config.record_dir);
	std::set<Place> places = places_to_look(config, records);
	Claims claims = all_claims(records);
	for (const auto &loaded : records) {
		if (!loaded.record)
			report.unreadable.push_back({loaded.name, loaded.path, loaded.error});
		else
			report.records.push_back(collect(config.record_dir, *loaded.record, claims, options));
	}
	report.orphans = find_orphans(places, options.dry_run ? records : load_records(config.record_dir));
	if (options.force_orphans && !options.dry_run)
		for (auto &orphan : report.orphans)
			if (orphan.empty)
				remove_orphan(config.record_dir, orphan);
	return report;
}

std::string format_gc(const GcReport &report)
{
	std::size_t removed =
		static_cast<std::size_t>(std::count_if(report.records.begin(), report.records.end(),
						       [](const GcEntry &e) { return e.decision.remove; }));
	const char *verb = report.options.dry_run ? "to remove" : "removed";
	std::string out = "gc: " + std::to_string(report.records.size()) + " records, " +
			  std::to_string(removed) + " " + verb + ", " +
			  std::to_string(report.records.size() - removed) + " kept" +
			  (report.options.dry_run ? " (dry run: nothing removed)" : "") + "\n";
	for (const auto &entry : report.records) {
		std::string what = !entry.decision.remove   ? "kept   "
				   : report.options.dry_run ? "remove "
				   : entry.failures         ? "FAILED "
							    : "removed";
		out += "  " + what + "  " + printable(entry.id) + " (" + printable(entry.name) +
		       "): " + entry.decision.reason + "\n";
	}
	for (const auto &bad : report.unreadable)
		out += "  unreadable " + printable(bad.path) + ": " + printable(bad.error) +
		       " (left alone)\n";
	out += "orphans: " + std::to_string(report.orphans.size()) + " overhead cgroups no record names" +
	       (report.options.force_orphans ? "" : " (--force-orphans removes the empty ones)") + "\n";
	for (const auto &orphan : report.orphans)
		out += orphan_line(orphan, report.options);
	return out;
}

bool gc_ok(const GcReport &report)
{
	return std::none_of(report.records.begin(), report.records.end(),
			    [](const GcEntry &e) { return e.failures > 0; }) &&
	       std::none_of(report.orphans.begin(), report.orphans.end(),
			    [](const Orphan &o) { return !o.error.empty(); });
}

} // namespace vmmcg::ctl
