// vmm-cgroupctl's pure parts: the placement rule over the status model, the tree, the JSON, the Prometheus
// text, the gc decision, the record selection, the command line and the /proc and cpu.stat parsers.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "format.h"
#include "gc.h"
#include "helpers.h"
#include "inspect.h"
#include "model.h"
#include "reconcile.h"
#include "records.h"
#include "text.h"

using namespace vmmcg;
using namespace vmmcg::ctl;
using nlohmann::json;

namespace {

ThreadStatus thread(pid_t tid, const std::string &name, Side side, const std::string &cpu,
		    const std::string &cpuset)
{
	return {tid, name, side, {{"cpu", cpu}, {"cpuset", cpuset}}, 1'500'000'000};
}

// A split container on a hybrid host: S /pod/vm1, O /pod/vmm-overhead-vm1-0123456789abcdef.
ContainerStatus v1_status()
{
	ContainerStatus s;
	s.id = "vm1";
	s.name = "vm1-0123456789abcdef";
	s.bundle = "/run/bundles/vm1";
	s.record_path = "/run/vmm-cgroup-hooks/vm1-0123456789abcdef.json";
	s.phase = "created";
	s.mode = "split";
	s.host = "hybrid";
	s.layout = "v1";
	s.container = ProcessStatus{4200, 99, true};
	const std::string S = "/pod/vm1", O = "/pod/vmm-overhead-vm1-0123456789abcdef";
	for (const char *key : {"cpu", "cpuset"})
		s.hierarchies.push_back(
			{key, std::string("/sys/fs/cgroup/") + key, {key}, {S, true}, {S, true}, {O, true}});
	s.vmm = VmmStatus{{4200, 99, true}, "qemu-system-x86", true};
	s.vcpu_source = "thread-names";
	s.threads = {thread(4200, "qemu-system-x86", Side::overhead, O, O),
		     thread(4201, "CPU 0/KVM", Side::vcpu, S, S),
		     thread(4202, "CPU 1/KVM", Side::vcpu, S, S)};
	s.cpu.source = "threads";
	s.cpu.vcpu = {3'000'000'000, 7, 250'000'000};
	s.cpu.overhead = {1'500'000'000, 0, 0};
	return s;
}

ContainerStatus v2_status()
{
	ContainerStatus s = v1_status();
	s.host = "v2";
	s.layout = "v2";
	s.hierarchies = {{"",
			  "/sys/fs/cgroup",
			  {"cpu", "cpuset"},
			  {"/pod/vm1", true},
			  {"/pod/vm1/vcpu", true},
			  {"/pod/vm1/overhead", true}}};
	s.threads = {{4200, "qemu-system-x86", Side::overhead, {{"", "/pod/vm1/overhead"}}, 0},
		     {4201, "CPU 0/KVM", Side::vcpu, {{"", "/pod/vm1/vcpu"}}, 0},
		     {4203, "IO iothread1", Side::overhead, {{"", "/pod/vm1"}}, 0}};
	s.cpu.source = "cpu.stat";
	return s;
}

StatusReport report_of(const ContainerStatus &status)
{
	return {{status}, {}};
}

// The samples of one metric, "{labels}" -> value.
std::map<std::string, std::string> samples(const std::string &text, const std::string &name)
{
	std::map<std::string, std::string> out;
	for (std::string_view line : lines(text))
		if (line.starts_with(name + "{") || line.starts_with(name + " ")) {
			std::size_t space = line.rfind(' ');
			out[std::string(line.substr(name.size(), space - name.size()))] =
				std::string(line.substr(space + 1));
		}
	return out;
}

LoadedRecord loaded(const std::string &name, const std::string &id)
{
	Record record;
	record.id = id;
	record.name = name;
	return {name, "/r/" + name + ".json", record, {}};
}

Arguments parse(std::initializer_list<std::string_view> args)
{
	return parse_arguments(std::vector<std::string_view>(args));
}

} // namespace

TEST_SUITE("ctl")
{
	TEST_CASE("placement: each thread on its side in every hierarchy")
	{
		ContainerStatus s = v1_status();
		CHECK(placement_ok(s));
		CHECK(locate(s, s.threads[0]) == Location::overhead);
		CHECK(locate(s, s.threads[1]) == Location::vcpu);

		SUBCASE("a vCPU thread in O in one hierarchy is misplaced and mixed")
		{
			s.threads[1].cgroups["cpu"] = "/pod/vmm-overhead-vm1-0123456789abcdef";
			CHECK(!placed(s, s.threads[1]));
			CHECK(locate(s, s.threads[1]) == Location::mixed);
			CHECK(location_label(s, s.threads[1]) == "cpu:O cpuset:S");
			CHECK(!placement_ok(s));
		}
		SUBCASE("a thread elsewhere shows its path")
		{
			s.threads[0].cgroups = {{"cpu", "/other"}, {"cpuset", "/other"}};
			CHECK(locate(s, s.threads[0]) == Location::elsewhere);
			CHECK(location_label(s, s.threads[0]) == "/other");
		}
		SUBCASE("not ok without a live VMM, in phase creating, or with a problem")
		{
			ContainerStatus dead = s, creating = s, broken = s;
			dead.vmm->process.alive = false;
			creating.phase = "creating";
			broken.problems.push_back("/sys/fs/cgroup/cpu/pod/vmm-overhead-x is missing");
			CHECK(!placement_ok(dead));
			CHECK(!placement_ok(creating));
			CHECK(!placement_ok(broken));
		}
		SUBCASE("v2: a thread left in S itself is not placed")
		{
			ContainerStatus v2 = v2_status();
			CHECK(placed(v2, v2.threads[0]));
			CHECK(placed(v2, v2.threads[1]));
			CHECK(!placed(v2, v2.threads[2]));
			CHECK(location_label(v2, v2.threads[1]) == "S/vcpu");
			CHECK(location_label(v2, v2.threads[2]) == "S");
		}
		SUBCASE("sandbox-only: S is both sides")
		{
			s.mode = "sandbox-only";
			s.layout = "none";
			s.hierarchies = {{"cpu",
					  "/sys/fs/cgroup/cpu",
					  {"cpu"},
					  {"/pod/vm1", true},
					  {"/pod/vm1", true},
					  {"/pod/vm1", true}}};
			for (auto &t : s.threads)
				t.cgroups = {{"cpu", "/pod/vm1"}};
			CHECK(placement_ok(s));
			CHECK(location_label(s, s.threads[0]) == "S");
		}
	}

	TEST_CASE("the tree: aligned columns, colour only when asked")
	{
		ContainerStatus s = v1_status();
		s.threads[2].cgroups = {{"cpu", "/pod/vmm-overhead-vm1-0123456789abcdef"},
					{"cpuset", "/pod/vmm-overhead-vm1-0123456789abcdef"}};
		std::string plain = format_tree(report_of(s), false);
		INFO(plain);
		CHECK(plain.find("\033[") == std::string::npos);
		CHECK(plain.find("vm1  split on a hybrid host, created  placement NOT ok") == 0);
		CHECK(plain.find("│  ├─ 4201  CPU 0/KVM        vcpu      S  ok\n") != std::string::npos);
		CHECK(plain.find("│  └─ 4202  CPU 1/KVM        vcpu      O  MISPLACED\n") !=
		      std::string::npos);
		CHECK(plain.find("CPU        vcpu 3.00 s, overhead 1.50 s (threads)") != std::string::npos);
		CHECK(plain.find("throttled  vcpu 7 periods, 0.25 s; overhead 0 periods, 0.00 s") !=
		      std::string::npos);
		std::string coloured = format_tree(report_of(s), true);
		CHECK(coloured.find("\033[31mMISPLACED\033[0m") != std::string::npos);
		CHECK(coloured.find("\033[32mok\033[0m") != std::string::npos);
		CHECK(format_tree({}, false) == "no container is managed here\n");
		CHECK(plain.find("watcher") == std::string::npos);
		s.watcher = ProcessStatus{4300, 120, true};
		CHECK(format_tree(report_of(s), false).find("├─ watcher    pid 4300, watching\n") !=
		      std::string::npos);
		s.watcher->alive = false;
		CHECK(format_tree(report_of(s), false).find("├─ watcher    pid 4300, ended\n") !=
		      std::string::npos);
		CHECK(json::parse(format_json(report_of(s)))["containers"][0]["watcher"]["pid"] == 4300);
	}

	TEST_CASE("the JSON document")
	{
		ContainerStatus s = v1_status();
		s.threads[1].name = "bad\nname\xff";
		StatusReport report = report_of(s);
		report.unreadable.push_back({"x", "/r/x.json", "record: not valid JSON"});
		json doc = json::parse(format_json(report));
		CHECK(doc["version"] == status_json_version);
		REQUIRE(doc["containers"].size() == 1);
		const json &c = doc["containers"][0];
		CHECK(c["id"] == "vm1");
		CHECK(c["layout"] == "v1");
		CHECK(c["placement_ok"] == true);
		CHECK(c["hierarchies"][0]["overhead"]["path"] == "/pod/vmm-overhead-vm1-0123456789abcdef");
		CHECK(c["threads"][1]["side"] == "vcpu");
		CHECK(c["threads"][1]["now"] == "vcpu");
		// printable: no control or non-UTF-8 byte
		CHECK(c["threads"][1]["name"] == "bad\\x0aname\\xff");
		CHECK(c["threads"][0]["cgroups"]["cpuset"] == "/pod/vmm-overhead-vm1-0123456789abcdef");
		CHECK(c["cpu"]["vcpu"]["usage_ns"] == 3'000'000'000ULL);
		CHECK(c["cpu"]["overhead"]["nr_throttled"] == 0);
		CHECK(c["settler"].is_null());
		CHECK(c["watcher"].is_null());
		CHECK(doc["unreadable"][0]["error"] == "record: not valid JSON");
		s.cpu.overhead.throttled_ns.reset();
		CHECK(json::parse(
			      format_json(report_of(s)))["containers"][0]["cpu"]["overhead"]["throttled_ns"]
			      .is_null());
		CHECK(json::parse(format_json(
			      report_of(v2_status())))["containers"][0]["threads"][0]["cgroups"]["cgroup2"] ==
		      "/pod/vm1/overhead");
	}

	TEST_CASE("the Prometheus text: families, labels, values")
	{
		ContainerStatus s = v1_status();
		s.id = "a\"b\\c";
		std::string text = format_prometheus(report_of(s));
		INFO(text);
		CHECK(text.find("# HELP vmm_cgroup_cpu_seconds_total ") != std::string::npos);
		CHECK(text.find("# TYPE vmm_cgroup_cpu_seconds_total counter\n") != std::string::npos);
		CHECK(text.find("# TYPE vmm_cgroup_threads gauge\n") != std::string::npos);
		std::string labels = R"({container="a\"b\\c",instance_name="vm1-0123456789abcdef")";
		auto cpu = samples(text, "vmm_cgroup_cpu_seconds_total");
		CHECK(cpu[labels.substr(0, labels.size() - 1) + R"(",side="vcpu"})"] == "3.000000000");
		auto threads = samples(text, "vmm_cgroup_threads");
		CHECK(threads.size() == 4);
		CHECK(threads[labels.substr(0, labels.size() - 1) + R"(",side="vcpu",placed="true"})"] ==
		      "2");
		CHECK(threads[labels.substr(0, labels.size() - 1) + R"(",side="overhead",placed="false"})"] ==
		      "0");
		CHECK(samples(text, "vmm_cgroup_placement_ok")[labels + "}"] == "1");
		CHECK(samples(text,
			      "vmm_cgroup_throttled_seconds_total")[labels.substr(0, labels.size() - 1) +
								    R"(",side="vcpu"})"] == "0.250000000");
		CHECK(samples(text, "vmm_cgroup_unreadable_records")[""] == "0");
		// Unknown figures are left out, not written as 0.
		s.cpu.overhead.usage_ns.reset();
		CHECK(samples(format_prometheus(report_of(s)), "vmm_cgroup_cpu_seconds_total").size() == 1);
		// No container: the families, and no sample of them.
		CHECK(samples(format_prometheus({}), "vmm_cgroup_threads").empty());
	}

	TEST_CASE("label values and seconds")
	{
		CHECK(escape_label_value("plain") == "plain");
		CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
		CHECK(seconds_text(0) == "0.000000000");
		CHECK(seconds_text(1'500'000'001) == "1.500000001");
	}

	TEST_CASE("gc: nothing of a live container, the rest once it is gone")
	{
		GcFacts gone;
		gone.container_known = true;
		gone.cgroups_known = true;
		gone.sandbox_exists = true;
		CHECK(decide_gc(gone).remove);

		GcFacts live = gone;
		live.container_alive = true;
		CHECK(!decide_gc(live).remove);
		live.sandbox_exists = false; // even when S is gone
		CHECK(!decide_gc(live).remove);

		GcFacts vmm = gone;
		vmm.vmm_alive = true;
		CHECK(!decide_gc(vmm).remove);
		CHECK(decide_gc(vmm).reason == "its VMM is alive");

		GcFacts busy = gone;
		busy.tasks_inside = true;
		CHECK(!decide_gc(busy).remove);

		GcFacts no_sandbox;
		no_sandbox.cgroups_known = true;
		CHECK(decide_gc(no_sandbox).remove);
		CHECK(decide_gc(no_sandbox).reason == "S no longer exists in any hierarchy");

		GcFacts unknown; // an old record without the container's process, and S still there
		unknown.cgroups_known = true;
		unknown.sandbox_exists = true;
		CHECK(!decide_gc(unknown).remove);

		GcFacts sandbox_only; // no cgroups recorded: the container's process decides
		sandbox_only.container_known = true;
		CHECK(decide_gc(sandbox_only).remove);

		// A record naming a mount that is no cgroup file system: nothing there can be checked.
		GcFacts refused = gone;
		refused.sandbox_exists = false;
		refused.mount_refused = "/tmp/x is not a cgroup file system";
		CHECK(!decide_gc(refused).remove);
		CHECK(decide_gc(refused).reason.starts_with("/tmp/x is not a cgroup file system"));
		refused.container_alive = true;
		CHECK(decide_gc(refused).reason == "the container's process is alive");

		// A settler or watcher still running does not keep a gone container: clean_up stops it first.
		GcFacts watched = gone;
		watched.watcher_alive = true;
		CHECK(decide_gc(watched).remove);
		CHECK(decide_gc(watched).reason.ends_with("; its watcher still runs: stopped first"));
		GcFacts settling = gone;
		settling.settler_alive = true;
		CHECK(decide_gc(settling).reason.ends_with("; its settler still runs: stopped first"));
		GcFacts live_watched = live;
		live_watched.watcher_alive = true;
		CHECK(!decide_gc(live_watched).remove);

		// A forged or stale record: a watcher that is no fork of poststart, or a cgroup or process
		// another record names too, keeps it (and the other).
		GcFacts foreign = watched;
		foreign.foreign_helper = "its watcher (pid 9) is sshd, not vmm-cgroup-poststart";
		CHECK(!decide_gc(foreign).remove);
		CHECK(decide_gc(foreign).reason ==
		      "its watcher (pid 9) is sshd, not vmm-cgroup-poststart: left alone");
		GcFacts shared = gone;
		shared.shared_claim = "/sys/fs/cgroup/cpu/pod/vmm-overhead-vm1";
		CHECK(!decide_gc(shared).remove);
		CHECK(decide_gc(shared).reason ==
		      "/sys/fs/cgroup/cpu/pod/vmm-overhead-vm1 is named by another record too: left alone");
	}

	TEST_CASE("selecting records by instance name, id, or the start of an id")
	{
		std::vector<LoadedRecord> all = {loaded("abc-1111111111111111", "abc"),
						 loaded("abc-2222222222222222", "abc"),
						 loaded("abd-3333333333333333", "abd"),
						 {"broken", "/r/broken.json", std::nullopt, "bad"}};
		CHECK(select_records(all, "abc-2222222222222222").size() == 1);
		CHECK(select_records(all, "abc").size() == 2); // one id in two bundles
		CHECK(select_records(all, "ab").size() == 3);
		CHECK(select_records(all, "abd")[0].name == "abd-3333333333333333");
		CHECK(select_records(all, "broken").size() == 1);
		CHECK(select_records(all, "zzz").empty());
		CHECK(select_records(all, "").empty());
		// Only a prefix of several ids is ambiguous: one id in two bundles is one container.
		CHECK(ambiguity(all, "ab") ==
		      "'ab' is the start of the ids of 2 containers (abc, abd): give more of the id");
		CHECK(!ambiguity(all, "abc"));
		CHECK(!ambiguity(all, "abd"));
		CHECK(!ambiguity(all, "a-1111111111111111"));
		CHECK(!ambiguity(all, "abc-2222222222222222"));
		CHECK(!ambiguity(all, "zzz"));
		CHECK(!ambiguity(all, "broken"));
	}

	TEST_CASE("the command line")
	{
		Arguments status = parse({"--config", "/c.json", "status", "vm1", "--json"});
		CHECK(status.command == "status");
		CHECK(*status.config == "/c.json");
		CHECK(status.targets == std::vector<std::string>{"vm1"});
		CHECK(status.json);
		CHECK(parse({"reconcile", "--all"}).all);
		CHECK(parse({"gc", "--dry-run", "--config=/x"}).dry_run);
		CHECK(parse({"gc", "--help"}).help);
		CHECK(parse({"--version"}).version);
		CHECK_INPUT_ERROR(parse({}), "a command is needed");
		CHECK_INPUT_ERROR(parse({"stats"}), "command 'stats': unknown");
		CHECK_INPUT_ERROR(parse({"status", "--json", "--prometheus"}), "not both");
		CHECK_INPUT_ERROR(parse({"gc", "--json"}), "--json and --prometheus are for status");
		CHECK_INPUT_ERROR(parse({"reconcile"}), "NAME|ID... or --all");
		CHECK_INPUT_ERROR(parse({"reconcile", "vm1", "--all"}), "NAME|ID... or --all");
		CHECK_INPUT_ERROR(parse({"status", "a", "b"}), "at most one");
		CHECK_INPUT_ERROR(parse({"gc", "vm1"}), "gc takes no NAME|ID");
		CHECK_INPUT_ERROR(parse({"status", "--bogus"}), "'--bogus': unknown");
		CHECK_INPUT_ERROR(parse({"status", "--config"}), "--config needs a PATH");
		CHECK_INPUT_ERROR(parse({"--config=", "status"}), "--config= needs a PATH");
		// Each error names where the usage is: the command's own --help once the command is known.
		CHECK_INPUT_ERROR(parse({"gc", "--json"}), "(vmm-cgroupctl gc --help)");
		CHECK_INPUT_ERROR(parse({"stats"}), "(vmm-cgroupctl --help)");
		CHECK_INPUT_ERROR(parse({"help", "bogus"}), "help: 'bogus' is not a command");
		// --help shows the command's usage, whatever else the line holds.
		CHECK(parse({"reconcile", "--help"}).help);
		CHECK(parse({"gc", "vm1", "--json", "-h"}).help);
		CHECK_INPUT_ERROR(parse({"stats", "--help"}), "command 'stats': unknown");
		CHECK(help_text("gc").find("--force-orphans") != std::string::npos);
		CHECK(help_text("").find("Commands:") != std::string::npos);
	}

	TEST_CASE("colour: a terminal, and NO_COLOR unset or empty")
	{
		CHECK(use_colour(true, nullptr));
		CHECK(use_colour(true, ""));
		CHECK(!use_colour(true, "1"));
		CHECK(!use_colour(false, nullptr));
	}

	TEST_CASE("reconcile: the threads whose place changed")
	{
		ThreadSnapshot before = {{1, {"main", "O"}},
					 {2, {"CPU 0/KVM", "O"}},
					 {3, {"CPU 1/KVM", "S"}},
					 {4, {"gone", "O"}}};
		ThreadSnapshot after = {{1, {"main", "O"}},
					{2, {"CPU 0/KVM", "S"}},
					{3, {"CPU 1/KVM", "S"}},
					{5, {"new", "S"}}};
		auto moves = diff_moves(before, after);
		REQUIRE(moves.size() == 1);
		CHECK(moves[0].tid == 2);
		CHECK(moves[0].from == "O");
		CHECK(moves[0].to == "S");
		ReconcileOutcome outcome{"vm1", "vm1-x", ReconcileOutcome::Result::placed,
					 "VMM pid 1, 2 vCPU threads", moves};
		std::string text = format_reconcile({outcome});
		CHECK(text ==
		      "vm1: placed: VMM pid 1, 2 vCPU threads; 1 threads moved\n  2  CPU 0/KVM  O -> S\n");
		CHECK(reconcile_ok({outcome}));
		outcome.result = ReconcileOutcome::Result::incomplete;
		CHECK(!reconcile_ok({outcome}));
	}

	TEST_CASE("cpu.stat and the CPU ticks of a stat line")
	{
		auto stat = parse_cpu_stat("nr_periods 10\nnr_throttled 3\nthrottled_time 123456789\nbad\n");
		CHECK(stat.at("nr_throttled") == 3);
		CHECK(stat.at("throttled_time") == 123456789);
		CHECK(stat.count("bad") == 0);
		// utime 120 and stime 35 (fields 14 and 15), a comm with spaces and parentheses.
		std::string line =
			"4201 (CPU 0/KVM) (x)) S 1 4200 4200 0 -1 4194368 100 0 0 0 120 35 0 0 20 0 5 0 "
			"88 0 0\n";
		CHECK(parse_cpu_ticks(line) == 155);
		CHECK(!parse_cpu_ticks("4201 (short) S 1 2"));
		CHECK(!parse_cpu_ticks("no parenthesis"));
	}
}
