#include "format.h"

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <utility>

#include "json_writer.h"
#include "text.h"

namespace vmmcg::ctl {

namespace {

// ---- shared

std::string location_name(const ContainerStatus &status, Location location)
{
	bool v2 = status.layout == "v2";
	switch (location) {
	case Location::vcpu:
		return v2 ? "S/vcpu" : "S";
	case Location::overhead:
		return v2 ? "S/overhead" : "O";
	case Location::sandbox:
		return "S";
	default:
		return "?";
	}
}

std::string hierarchy_name(const HierarchyStatus &hierarchy)
{
	return hierarchy.key.empty() ? "cgroup2" : hierarchy.key;
}

std::size_t count_threads(const ContainerStatus &status, Side side, bool on_side)
{
	return static_cast<std::size_t>(
		std::count_if(status.threads.begin(), status.threads.end(), [&](const ThreadStatus &thread) {
			return thread.side == side && placed(status, thread) == on_side;
		}));
}

// ---- the tree

enum class Colour { none, green, red, yellow, bold };

std::string paint(const std::string &text, Colour colour, bool enabled)
{
	static constexpr const char *codes[] = {"", "\033[32m", "\033[31m", "\033[33m", "\033[1m"};
	if (!enabled || colour == Colour::none)
		return text;
	return codes[static_cast<int>(colour)] + text + "\033[0m";
}

struct Cell {
	std::string text;
	Colour colour = Colour::none;
};
using Row = std::vector<Cell>;

// Rows with their columns padded to the widest cell (the last column is not padded); colour after padding,
// so escape codes take no width.
std::vector<std::string> align(const std::vector<Row> &rows, bool colour)
{
	std::vector<std::size_t> widths;
	for (const auto &row : rows)
		for (std::size_t i = 0; i < row.size(); ++i) {
			widths.resize(std::max(widths.size(), row.size()));
			widths[i] = std::max(widths[i], row[i].text.size());
		}
	std::vector<std::string> lines;
	for (const auto &row : rows) {
		std::string line;
		for (std::size_t i = 0; i < row.size(); ++i) {
			bool last = i + 1 == row.size();
			std::string cell =
				last ? row[i].text
				     : row[i].text + std::string(widths[i] - row[i].text.size(), ' ');
			line += paint(cell, row[i].colour, colour) + (last ? "" : "  ");
		}
		lines.push_back(line);
	}
	return lines;
}

struct Node {
	std::string label;
	std::string text;
	std::vector<std::string> children;
};

void render(std::string &out, const std::vector<Node> &nodes)
{
	std::size_t width = 0;
	for (const auto &node : nodes)
		width = std::max(width, node.label.size());
	for (std::size_t i = 0; i < nodes.size(); ++i) {
		bool last = i + 1 == nodes.size();
		const Node &node = nodes[i];
		out += (last ? "└─ " : "├─ ") + node.label;
		if (!node.text.empty())
			out += std::string(width - node.label.size() + 2, ' ') + node.text;
		out += "\n";
		for (std::size_t j = 0; j < node.children.size(); ++j)
			out += std::string(last ? "   " : "│  ") +
			       (j + 1 == node.children.size() ? "└─ " : "├─ ") + node.children[j] + "\n";
	}
}

std::string process_text(const ProcessStatus &process, const char *alive, const char *dead)
{
	return "pid " + std::to_string(process.pid) + ", " + (process.alive ? alive : dead);
}

std::string cgroup_text(const char *label, const CgroupRef &ref)
{
	return std::string(label) + " " + printable(ref.path) + (ref.exists ? "" : " (missing)");
}

std::vector<std::string> cgroup_rows(const ContainerStatus &status, bool colour)
{
	std::vector<Row> rows;
	for (const auto &h : status.hierarchies) {
		bool missing = !h.sandbox.exists || !h.vcpu.exists || !h.overhead.exists;
		Colour tint = missing ? Colour::red : Colour::none;
		Row row{{hierarchy_name(h)}, {cgroup_text("S", h.sandbox), tint}};
		if (status.layout == "v1")
			row.push_back({cgroup_text("O", h.overhead), tint});
		if (status.layout == "v2")
			row.insert(row.end(), {{cgroup_text("S/vcpu", h.vcpu), tint},
					       {cgroup_text("S/overhead", h.overhead), tint}});
		row.push_back({h.mount});
		rows.push_back(row);
	}
	return align(rows, colour);
}

std::vector<std::string> thread_rows(const ContainerStatus &status, bool colour)
{
	std::vector<Row> rows;
	for (const auto &thread : status.threads) {
		bool ok = placed(status, thread);
		rows.push_back({{std::to_string(thread.tid)},
				{printable(thread.name)},
				{to_string(thread.side)},
				{location_label(status, thread)},
				{ok ? "ok" : "MISPLACED", ok ? Colour::green : Colour::red}});
	}
	return align(rows, colour);
}

std::string seconds_short(const std::optional<std::uint64_t> &ns)
{
	if (!ns)
		return "?";
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%.2f s", static_cast<double>(*ns) / 1e9);
	return buf;
}

std::string number_or_unknown(const std::optional<std::uint64_t> &value)
{
	return value ? std::to_string(*value) : "?";
}

std::string throttle_text(const SideFigures &side)
{
	if (!side.nr_throttled)
		return "?"; // no cpu controller there
	return number_or_unknown(side.nr_throttled) + " periods, " + seconds_short(side.throttled_ns);
}

std::string vmm_text(const ContainerStatus &status)
{
	if (!status.vmm)
		return "none found";
	const VmmStatus &vmm = *status.vmm;
	std::string text = process_text(vmm.process, "alive", "gone") + " (" + printable(vmm.name) + "), " +
			   (vmm.recorded ? "as recorded" : "found from the container, not in the record");
	if (!status.vcpu_source.empty())
		text += ", vCPUs by " + status.vcpu_source;
	return text;
}

std::string header(const ContainerStatus &status, bool colour)
{
	bool ok = placement_ok(status);
	std::string verdict = ok ? "placement ok" : "placement NOT ok";
	return paint(printable(status.id), Colour::bold, colour) + "  " + status.mode + " on a " +
	       status.host + " host, " + status.phase + "  " +
	       paint(verdict, ok ? Colour::green : Colour::red, colour) + "\n";
}

std::vector<Node> container_nodes(const ContainerStatus &status, bool colour)
{
	std::vector<Node> nodes;
	nodes.push_back({"instance", printable(status.name), {}});
	nodes.push_back({"record", printable(status.record_path), {}});
	if (status.container)
		nodes.push_back({"container", process_text(*status.container, "alive", "gone"), {}});
	if (status.settler)
		nodes.push_back({"settler", process_text(*status.settler, "running", "ended"), {}});
	if (status.watcher)
		nodes.push_back({"watcher", process_text(*status.watcher, "watching", "ended"), {}});
	if (!status.hierarchies.empty())
		nodes.push_back({"cgroups", "", cgroup_rows(status, colour)});
	nodes.push_back({"VMM", vmm_text(status), thread_rows(status, colour)});
	if (status.vmm) {
		nodes.push_back({"CPU",
				 "vcpu " + seconds_short(status.cpu.vcpu.usage_ns) + ", overhead " +
					 seconds_short(status.cpu.overhead.usage_ns) + " (" +
					 status.cpu.source + ")",
				 {}});
		nodes.push_back({"throttled",
				 "vcpu " + throttle_text(status.cpu.vcpu) + "; overhead " +
					 throttle_text(status.cpu.overhead),
				 {}});
	}
	for (const auto &problem : status.problems)
		nodes.push_back({"problem", paint(printable(problem), Colour::yellow, colour), {}});
	return nodes;
}

// ---- JSON

void write_process(JsonWriter &out, const std::optional<ProcessStatus> &process)
{
	if (!process) {
		out.null();
		return;
	}
	out.begin_object();
	out.key("pid").integer(process->pid);
	out.key("start_time").unsigned_integer(process->start_time);
	out.key("alive").boolean(process->alive);
	out.end_object();
}

void write_cgroup(JsonWriter &out, const char *key, const CgroupRef &ref)
{
	out.key(key).begin_object();
	out.key("path").string(printable(ref.path, SIZE_MAX));
	out.key("exists").boolean(ref.exists);
	out.end_object();
}

void write_hierarchies(JsonWriter &out, const ContainerStatus &status)
{
	out.key("hierarchies").begin_array();
	for (const auto &h : status.hierarchies) {
		out.begin_object();
		out.key("key").string(h.key);
		out.key("mount").string(h.mount);
		out.key("controllers").strings(h.controllers);
		write_cgroup(out, "sandbox", h.sandbox);
		write_cgroup(out, "vcpu", h.vcpu);
		write_cgroup(out, "overhead", h.overhead);
		out.end_object();
	}
	out.end_array();
}

void write_vmm(JsonWriter &out, const ContainerStatus &status)
{
	out.key("vmm");
	if (!status.vmm) {
		out.null();
		return;
	}
	out.begin_object();
	out.key("pid").integer(status.vmm->process.pid);
	out.key("start_time").unsigned_integer(status.vmm->process.start_time);
	out.key("alive").boolean(status.vmm->process.alive);
	out.key("name").string(printable(status.vmm->name));
	out.key("recorded").boolean(status.vmm->recorded);
	out.end_object();
}

void write_threads(JsonWriter &out, const ContainerStatus &status)
{
	out.key("threads").begin_array();
	for (const auto &thread : status.threads) {
		out.begin_object();
		out.key("tid").integer(thread.tid);
		out.key("name").string(printable(thread.name));
		out.key("side").string(to_string(thread.side));
		out.key("now").string(to_string(locate(status, thread)));
		out.key("placed").boolean(placed(status, thread));
		out.key("cgroups").begin_object();
		for (const auto &[key, path] : thread.cgroups)
			out.key(key.empty() ? "cgroup2" : key).string(printable(path, SIZE_MAX));
		out.end_object();
		out.key("cpu_ns").unsigned_integer(thread.cpu_ns);
		out.end_object();
	}
	out.end_array();
}

void write_optional(JsonWriter &out, const char *key, const std::optional<std::uint64_t> &value)
{
	out.key(key);
	value ? (void)out.unsigned_integer(*value) : (void)out.null();
}

void write_side(JsonWriter &out, const char *key, const SideFigures &side)
{
	out.key(key).begin_object();
	write_optional(out, "usage_ns", side.usage_ns);
	write_optional(out, "nr_throttled", side.nr_throttled);
	write_optional(out, "throttled_ns", side.throttled_ns);
	out.end_object();
}

void write_container(JsonWriter &out, const ContainerStatus &status)
{
	out.begin_object();
	using Member = std::pair<const char *, const std::string *>;
	for (const auto &[key, value] : std::initializer_list<Member>{{"id", &status.id},
								      {"name", &status.name},
								      {"bundle", &status.bundle},
								      {"record", &status.record_path},
								      {"phase", &status.phase},
								      {"mode", &status.mode},
								      {"host", &status.host},
								      {"layout", &status.layout}})
		out.key(key).string(printable(*value, SIZE_MAX));
	out.key("container");
	write_process(out, status.container);
	out.key("settler");
	write_process(out, status.settler);
	out.key("watcher");
	write_process(out, status.watcher);
	write_hierarchies(out, status);
	write_vmm(out, status);
	out.key("vcpu_source").string(status.vcpu_source);
	write_threads(out, status);
	out.key("cpu").begin_object().key("source").string(status.cpu.source);
	write_side(out, "vcpu", status.cpu.vcpu);
	write_side(out, "overhead", status.cpu.overhead);
	out.end_object();
	out.key("placement_ok").boolean(placement_ok(status));
	out.key("problems").begin_array();
	for (const auto &problem : status.problems)
		out.string(printable(problem, SIZE_MAX));
	out.end_array();
	out.end_object();
}

// ---- Prometheus

struct Family {
	const char *name;
	const char *type;
	const char *help;
};

std::string labels_of(const ContainerStatus &status, const std::string &extra = {})
{
	return "{container=\"" + escape_label_value(status.id) + "\",instance_name=\"" +
	       escape_label_value(status.name) + "\"" + extra + "}";
}

void sample(std::string &out, const char *name, const std::string &labels, const std::string &value)
{
	out.append(name).append(labels).append(" ").append(value).append("\n");
}

void family_header(std::string &out, const Family &family)
{
	out.append("# HELP ").append(family.name).append(" ").append(family.help).append("\n");
	out.append("# TYPE ").append(family.name).append(" ").append(family.type).append("\n");
}

// One sample per side where the value is known; `seconds` converts nanoseconds.
void side_samples(std::string &out, const char *name, const ContainerStatus &status,
		  std::optional<std::uint64_t> SideFigures::*field, bool seconds)
{
	for (Side side : {Side::vcpu, Side::overhead}) {
		const SideFigures &figures = side == Side::vcpu ? status.cpu.vcpu : status.cpu.overhead;
		if (const auto &value = figures.*field)
			sample(out, name, labels_of(status, std::string(",side=\"") + to_string(side) + "\""),
			       seconds ? seconds_text(*value) : std::to_string(*value));
	}
}

void thread_samples(std::string &out, const char *name, const ContainerStatus &status)
{
	for (Side side : {Side::vcpu, Side::overhead})
		for (bool on_side : {true, false})
			sample(out, name,
			       labels_of(status, std::string(",side=\"") + to_string(side) + "\",placed=\"" +
							 (on_side ? "true" : "false") + "\""),
			       std::to_string(count_threads(status, side, on_side)));
}

void info_samples(std::string &out, const char *name, const ContainerStatus &status)
{
	sample(out, name,
	       labels_of(status, ",mode=\"" + escape_label_value(status.mode) + "\",host=\"" +
					 escape_label_value(status.host) + "\",phase=\"" +
					 escape_label_value(status.phase) + "\""),
	       "1");
}

using Samples = void (*)(std::string &, const char *, const ContainerStatus &);

// Every metric family but the unlabelled count of unreadable records, with what writes its samples.
const std::vector<std::pair<Family, Samples>> &metric_families()
{
	static const std::vector<std::pair<Family, Samples>> families = {
		{{"vmm_cgroup_info", "gauge",
		  "A container the hooks manage (one per record), with its mode, host mode and phase."},
		 info_samples},
		{{"vmm_cgroup_vmm_up", "gauge", "Whether the container's VMM is running."},
		 [](std::string &out, const char *name, const ContainerStatus &s) {
			 sample(out, name, labels_of(s), s.vmm && s.vmm->process.alive ? "1" : "0");
		 }},
		{{"vmm_cgroup_cpu_seconds_total", "counter",
		  "CPU time of the VMM's vCPU threads (side=\"vcpu\") and of the rest of it "
		  "(side=\"overhead\")."},
		 [](std::string &out, const char *name, const ContainerStatus &s) {
			 side_samples(out, name, s, &SideFigures::usage_ns, true);
		 }},
		{{"vmm_cgroup_throttled_periods_total", "counter",
		  "CFS periods in which the side's cgroup was throttled."},
		 [](std::string &out, const char *name, const ContainerStatus &s) {
			 side_samples(out, name, s, &SideFigures::nr_throttled, false);
		 }},
		{{"vmm_cgroup_throttled_seconds_total", "counter", "Time the side's cgroup spent throttled."},
		 [](std::string &out, const char *name, const ContainerStatus &s) {
			 side_samples(out, name, s, &SideFigures::throttled_ns, true);
		 }},
		{{"vmm_cgroup_threads", "gauge",
		  "Threads of the VMM by the side they belong to, and whether they are there."},
		 thread_samples},
		{{"vmm_cgroup_placement_ok", "gauge",
		  "Whether every thread of the VMM is where the layout puts it."},
		 [](std::string &out, const char *name, const ContainerStatus &s) {
			 sample(out, name, labels_of(s), placement_ok(s) ? "1" : "0");
		 }},
	};
	return families;
}

} // namespace

std::string location_label(const ContainerStatus &status, const ThreadStatus &thread)
{
	Location location = locate(status, thread);
	if (location == Location::vcpu || location == Location::overhead || location == Location::sandbox)
		return location_name(status, location);
	std::string text;
	for (const auto &h : status.hierarchies) {
		auto it = thread.cgroups.find(h.key);
		std::string where = it == thread.cgroups.end() ? "(gone)" : printable(it->second);
		Location here = it == thread.cgroups.end() ? Location::elsewhere : locate(h, it->second);
		if (here != Location::elsewhere)
			where = location_name(status, here);
		text += (text.empty() ? "" : " ") +
			(location == Location::mixed ? hierarchy_name(h) + ":" : "") + where;
		if (location != Location::mixed)
			break;
	}
	return text;
}

std::string escape_label_value(std::string_view value)
{
	std::string out;
	for (char c : value) {
		if (c == '\\' || c == '"')
			out += '\\';
		if (c == '\n')
			out += "\\n";
		else
			out += c;
	}
	return out;
}

std::string seconds_text(std::uint64_t ns)
{
	char buf[48];
	std::snprintf(buf, sizeof(buf), "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
	return buf;
}

std::string format_tree(const StatusReport &report, bool colour)
{
	std::string out;
	if (report.containers.empty() && report.unreadable.empty())
		return "no container is managed here\n";
	for (std::size_t i = 0; i < report.containers.size(); ++i) {
		if (i > 0)
			out += "\n";
		out += header(report.containers[i], colour);
		render(out, container_nodes(report.containers[i], colour));
	}
	for (const auto &bad : report.unreadable)
		out += paint("unreadable record " + printable(bad.path), Colour::red, colour) + ": " +
		       printable(bad.error) + "\n";
	return out;
}

std::string format_json(const StatusReport &report)
{
	JsonWriter out;
	out.begin_object();
	out.key("version").integer(status_json_version);
	out.key("containers").begin_array();
	for (const auto &status : report.containers)
		write_container(out, status);
	out.end_array();
	out.key("unreadable").begin_array();
	for (const auto &bad : report.unreadable) {
		out.begin_object();
		out.key("name").string(printable(bad.name, SIZE_MAX));
		out.key("record").string(printable(bad.path, SIZE_MAX));
		out.key("error").string(printable(bad.error, SIZE_MAX));
		out.end_object();
	}
	out.end_array();
	out.end_object();
	return out.take() + "\n";
}

std::string format_prometheus(const StatusReport &report)
{
	std::string out;
	for (const auto &[family, samples] : metric_families()) {
		family_header(out, family);
		for (const auto &status : report.containers)
			samples(out, family.name, status);
	}
	family_header(out, {"vmm_cgroup_unreadable_records", "gauge",
			    "Record files that could not be read (status --json names them)."});
	out += "vmm_cgroup_unreadable_records " + std::to_string(report.unreadable.size()) + "\n";
	return out;
}

} // namespace vmmcg::ctl
