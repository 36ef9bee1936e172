#include "record.h"

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <set>
#include <variant>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;
using nlohmann::json;

namespace {

Record v1_record()
{
	Record record;
	record.id = "abc";
	record.name = "abc";
	record.bundle = "/run/bundles/abc";
	record.container = ProcessRef{4200, 123456789000ULL};
	record.host = HostMode::hybrid;
	record.mode = Mode::split;
	cgroup_v1::Hierarchy cpu;
	cpu.mount = "/sys/fs/cgroup/cpu,cpuacct";
	cpu.controllers = {"cpu", "cpuacct"};
	cpu.proc_key = "cpu";
	cpu.sandbox = "/machine/abc";
	cpu.overhead = "/a/b/abc";
	cpu.shared = {"/a", "/a/b"};
	cgroup_v1::Hierarchy cpuset = cpu;
	cpuset.mount = "/sys/fs/cgroup/cpuset";
	cpuset.controllers = {"cpuset"};
	cpuset.proc_key = "cpuset";
	cpuset.sandbox = "/machine/abc-set";
	record.cgroups = cgroup_v1::Layout{{cpu, cpuset}};
	record.vmm = ProcessRef{4242, 123456789012ULL};
	record.vcpus = {4250, 4251, 4252};
	record.vcpu_source = "thread-names";
	record.settler = ProcessRef{4300, 99};
	return record;
}

Record v2_record()
{
	Record record;
	record.id = "def.1";
	record.name = "def.1-0123456789abcdef";
	record.bundle = "/run/bundles/def.1";
	record.phase = Record::Phase::creating;
	record.host = HostMode::v2;
	record.mode = Mode::split;
	cgroup_v2::Layout layout;
	layout.mount = "/sys/fs/cgroup";
	layout.sandbox = "/machine.slice/libpod-def.scope";
	layout.enabled = {"cpu", "cpuset"};
	layout.saved = {{"cpu.max", "50000 100000"}};
	layout.relaxed = true;
	record.cgroups = layout;
	record.qmp_socket = "/run/vm/qmp.sock";
	record.vmm = ProcessRef{77, 1};
	record.vcpus = {78};
	record.vcpu_source = "qmp";
	record.watcher = ProcessRef{79, 5};
	return record;
}

void check_same_cgroups(const CgroupLayout &a, const CgroupLayout &b)
{
	REQUIRE(a.index() == b.index());
	if (const auto *x = std::get_if<cgroup_v1::Layout>(&a)) {
		const auto &y = std::get<cgroup_v1::Layout>(b);
		REQUIRE(x->hierarchies.size() == y.hierarchies.size());
		for (std::size_t i = 0; i < x->hierarchies.size(); ++i) {
			CAPTURE(i);
			const auto &p = x->hierarchies[i];
			const auto &q = y.hierarchies[i];
			CHECK(p.mount == q.mount);
			CHECK(p.controllers == q.controllers);
			CHECK(p.proc_key == q.proc_key);
			CHECK(p.sandbox == q.sandbox);
			CHECK(p.overhead == q.overhead);
			CHECK(p.shared == q.shared);
		}
	}
	if (const auto *x = std::get_if<cgroup_v2::Layout>(&a)) {
		const auto &y = std::get<cgroup_v2::Layout>(b);
		CHECK(x->mount == y.mount);
		CHECK(x->sandbox == y.sandbox);
		CHECK(x->enabled == y.enabled);
		CHECK(x->saved == y.saved);
		CHECK(x->relaxed == y.relaxed);
	}
}

void check_same(const Record &a, const Record &b, bool legacy = false)
{
	CHECK(a.id == b.id);
	if (!legacy) {
		CHECK(a.name == b.name);
		CHECK(a.bundle == b.bundle);
		CHECK(a.phase == b.phase);
		CHECK(a.container == b.container);
		CHECK(a.watcher == b.watcher); // version 1 had no watcher
	}
	CHECK(a.host == b.host);
	CHECK(a.mode == b.mode);
	check_same_cgroups(a.cgroups, b.cgroups);
	CHECK(a.qmp_socket == b.qmp_socket);
	CHECK(a.vmm == b.vmm);
	CHECK(a.vcpus == b.vcpus);
	CHECK(a.vcpu_source == b.vcpu_source);
	CHECK(a.settler == b.settler);
}

std::set<std::string> entries(const std::string &dir)
{
	std::set<std::string> names;
	for (const auto &entry : std::filesystem::directory_iterator(dir))
		names.insert(entry.path().filename().string());
	return names;
}

json edited(const Record &record, const std::function<void(json &)> &edit)
{
	json doc = json::parse(record_to_json(record));
	edit(doc);
	return doc;
}

// A record as version 1 wrote it: one list of targets for both versions.
const char *v1_format_v1_host = R"({"adopted":[],"enabled":[],"host":"hybrid","id":"abc","mode":"split",
"qmp_socket":null,"relaxed":false,"saved":{},"settler":{"pid":4300,"start_time":99},
"targets":[{"controllers":"cpu,cpuacct","create":[{"path":"/a","shared":true,"threaded":false},
{"path":"/a/b","shared":true,"threaded":false},{"path":"/a/b/abc","shared":false,"threaded":false}],
"mount":"/sys/fs/cgroup/cpu,cpuacct","overhead":"/a/b/abc","sandbox":"/machine/abc","v2":false,
"vcpu":"/machine/abc"},{"controllers":"cpuset","create":[{"path":"/a","shared":true,"threaded":false},
{"path":"/a/b","shared":true,"threaded":false},{"path":"/a/b/abc","shared":false,"threaded":false}],
"mount":"/sys/fs/cgroup/cpuset","overhead":"/a/b/abc","sandbox":"/machine/abc-set","v2":false,
"vcpu":"/machine/abc-set"}],"vcpu_source":"thread-names","vcpus":[4250,4251,4252],"version":1,
"vmm":{"pid":4242,"start_time":123456789012}})";

const char *v1_format_v2_host = R"({"adopted":[],"enabled":["cpu","cpuset"],"host":"v2","id":"def.1",
"mode":"split","qmp_socket":"/run/vm/qmp.sock","relaxed":true,"saved":{"cpu.max":"50000 100000"},
"settler":null,"targets":[{"controllers":"unified","create":[{"path":"/machine.slice/libpod-def.scope/vcpu",
"shared":false,"threaded":true},{"path":"/machine.slice/libpod-def.scope/overhead","shared":false,
"threaded":true}],"mount":"/sys/fs/cgroup","overhead":"/machine.slice/libpod-def.scope/overhead",
"sandbox":"/machine.slice/libpod-def.scope","v2":true,"vcpu":"/machine.slice/libpod-def.scope/vcpu"}],
"vcpu_source":"qmp","vcpus":[78],"version":1,"vmm":{"pid":77,"start_time":1}})";

} // namespace

TEST_SUITE("record")
{
	TEST_CASE("the writer's output is JSON that nlohmann parses to the record's values, escapes included")
	{
		Record escapes = v2_record();
		escapes.qmp_socket = "/run/a \"quoted\" \\ path\twith\x01control";
		std::get<cgroup_v2::Layout>(escapes.cgroups).sandbox =
			"/k\xc3\xa9/\xe2\x82\xac"; // UTF-8: é, €
		json doc = json::parse(record_to_json(escapes));
		CHECK(doc["qmp_socket"] == *escapes.qmp_socket);
		CHECK(doc["v2"]["sandbox"] == "/k\xc3\xa9/\xe2\x82\xac");
		CHECK(doc["v1"].is_null());
		Record many = v1_record();
		for (pid_t tid = 1; tid < 300; ++tid)
			many.vcpus.push_back(tid * 7);
		many.vmm = ProcessRef{4194304, 18446744073709551615ULL};
		json big = json::parse(record_to_json(many));
		CHECK(big["vcpus"].size() == many.vcpus.size());
		CHECK(big["vmm"]["start_time"].get<std::uint64_t>() == 18446744073709551615ULL);
		CHECK(record_to_json(many).ends_with("}\n"));
		CHECK(record_to_json(many).find('\n') == record_to_json(many).size() - 1); // one line
		// Not UTF-8: refused, not written as something unreadable.
		Record bad = v1_record();
		std::get<cgroup_v1::Layout>(bad.cgroups).hierarchies[0].mount = "/sys/fs/cgroup/\xff";
		CHECK_THROWS_AS(record_to_json(bad), json::type_error);
	}

	TEST_CASE("round trip: v1 layout with VMM, settler and vCPUs")
	{
		Record record = v1_record();
		check_same(record_from_json(record_to_json(record)), record);
	}

	TEST_CASE("round trip: v2 layout with enabled controllers, saved values and a QMP socket")
	{
		Record record = v2_record();
		check_same(record_from_json(record_to_json(record)), record);
	}

	TEST_CASE("round trip: an empty sandbox-only record")
	{
		Record record;
		record.id = "x";
		record.name = "x-0123456789abcdef";
		record.mode = Mode::sandbox_only;
		Record back = record_from_json(record_to_json(record));
		check_same(back, record);
		CHECK(std::holds_alternative<std::monostate>(back.cgroups));
		CHECK_FALSE(back.vmm);
		CHECK_FALSE(back.settler);
		CHECK_FALSE(back.watcher);
		CHECK_FALSE(back.qmp_socket);
	}

	TEST_CASE("the JSON an operator reads")
	{
		json doc = json::parse(record_to_json(v1_record()));
		CHECK(doc["version"] == 2);
		CHECK(doc["id"] == "abc");
		CHECK(doc["mode"] == "split");
		CHECK(doc["host"] == "hybrid");
		CHECK(doc["vmm"]["pid"] == 4242);
		CHECK(doc["vmm"]["start_time"] == 123456789012ULL);
		CHECK(doc["v1"]["hierarchies"][0]["overhead"] == "/a/b/abc");
		CHECK(doc["v1"]["hierarchies"][0]["controllers"] == json{"cpu", "cpuacct"});
		CHECK(doc["v2"].is_null());
		CHECK(doc["qmp_socket"].is_null());
	}

	TEST_CASE("version 1 records are still read")
	{
		Record v1 = record_from_json(v1_format_v1_host);
		check_same(v1, v1_record(), true);
		CHECK(v1.name == "abc"); // its file was abc.json
		Record v2 = record_from_json(v1_format_v2_host);
		check_same(v2, v2_record(), true);
		CHECK_INPUT_ERROR(
			record_from_json(
				json::parse(v1_format_v2_host)
					.dump()
					.replace(json::parse(v1_format_v2_host).dump().find("\"saved\":{"), 9,
						 "\"saved\":{\"x\":\"1\",")),
			"'x'");
		// What version 2 refuses, version 1 refuses too: the fuzzer read a version 1 record with an
		// id that version 2's reader refuses as its name, so the hook could not read back what it
		// rewrote.
		auto edited_v1 = [](const char *text, const std::function<void(json &)> &edit) {
			json doc = json::parse(text);
			edit(doc);
			return doc.dump();
		};
		CHECK_INPUT_ERROR(
			record_from_json(edited_v1(v1_format_v1_host, [](json &d) { d["id"] = "a/b"; })),
			"'id'");
		CHECK_INPUT_ERROR(
			record_from_json(edited_v1(v1_format_v1_host, [](json &d) { d["id"] = ""; })),
			"'id'");
		CHECK_INPUT_ERROR(record_from_json(edited_v1(v1_format_v2_host,
							     [](json &d) { d["qmp_socket"] = "run/qmp"; })),
				  "'qmp_socket'");
	}

	TEST_CASE("record_from_json: malformed records")
	{
		Record record = v2_record();
		CHECK_INPUT_ERROR(record_from_json(""), "record");
		CHECK_INPUT_ERROR(record_from_json("{"), "record");
		CHECK_INPUT_ERROR(record_from_json("[]"), "record");
		CHECK_INPUT_ERROR(record_from_json("{}"), "'version'");
		auto bad = [&](const std::function<void(json &)> &edit) {
			return edited(record, edit).dump();
		};
		auto bad_v1 = [&](const std::function<void(json &)> &edit) {
			return edited(v1_record(), edit).dump();
		};
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = 3; })), "version");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = "2"; })), "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d.erase("id"); })), "'id'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["mode"] = "both"; })), "'mode'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["host"] = "v3"; })), "'host'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["extra"] = 1; })),
				  "unknown field 'extra'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"] = 1; })), "'v2'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"].erase("mount"); })),
				  "'v2.mount'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"]["relaxed"] = 1; })),
				  "'v2.relaxed'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"]["extra"] = 1; })), "'extra'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["v1"] = json::parse(record_to_json(v1_record()))["v1"];
				  })),
				  "one version");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"] = nullptr; })), "split mode");
		CHECK_INPUT_ERROR(record_from_json(bad_v1([](json &d) { d["v1"]["hierarchies"] = 1; })),
				  "'v1.hierarchies'");
		CHECK_INPUT_ERROR(
			record_from_json(bad_v1([](json &d) { d["v1"]["hierarchies"][1].erase("mount"); })),
			"'v1.hierarchies[1].mount'");
		CHECK_INPUT_ERROR(record_from_json(bad_v1([](json &d) {
					  d["v1"]["hierarchies"][0]["controllers"] = {"memory"};
				  })),
				  "'memory'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {"a"}; })), "'vcpus[0]'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 1}};
				  })),
				  "'vmm.start_time'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vmm"] = "77"; })), "'vmm'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", "x"}, {"start_time", 1}};
				  })),
				  "'settler.pid'");
	}

	// Found by fuzz_record: nlohmann's get<int>() of a float is a static_cast, undefined out of range.
	TEST_CASE("record_from_json: numbers that are floats or out of range are refused, not converted")
	{
		Record record = v2_record();
		auto bad = [&](const std::function<void(json &)> &edit) {
			return edited(record, edit).dump();
		};
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = 4.21845e+23; })),
				  "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = 2.0; })), "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = -1e300; })), "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {1e30}; })), "'vcpus[0]'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {4294967297ULL}; })),
				  "'vcpus[0]'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 7.5}, {"start_time", 1}};
				  })),
				  "'vmm.pid'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 4294967297ULL}, {"start_time", 1}};
				  })),
				  "'vmm.pid'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 7}, {"start_time", 1e40}};
				  })),
				  "start_time");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", 7}, {"start_time", -3}};
				  })),
				  "start_time");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vcpus"] = {12, -1};
				  })),
				  "'vcpus[1]'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {0}; })), "'vcpus[0]'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = 12; })), "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", -1}, {"start_time", 1}};
				  })),
				  "'vmm.pid'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", 0}, {"start_time", 1}};
				  })),
				  "'settler.pid'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["v2"]["enabled"] = {"memory"}; })),
				  "'memory'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["v2"]["saved"] = {{"cgroup.procs", "1"}};
				  })),
				  "'cgroup.procs'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["qmp_socket"] = "../x"; })),
				  "qmp_socket");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["qmp_socket"] = 5; })), "qmp_socket");
	}

	TEST_CASE("record_from_json: cgroup paths that could climb")
	{
		for (const char *path : {"/a/../b", "../x", "", "a/b", "/a//b", "/a/b/"}) {
			CAPTURE(path);
			for (const char *key : {"mount", "sandbox", "overhead"}) {
				json doc = edited(v1_record(),
						  [&](json &d) { d["v1"]["hierarchies"][1][key] = path; });
				CHECK_INPUT_ERROR(record_from_json(doc.dump()), std::string(".") + key + "'");
			}
			json shared = edited(v1_record(),
					     [&](json &d) { d["v1"]["hierarchies"][1]["shared"][1] = path; });
			CHECK_INPUT_ERROR(record_from_json(shared.dump()), "'v1.hierarchies[1].shared[1]'");
			for (const char *key : {"mount", "sandbox"}) {
				json doc = edited(v2_record(), [&](json &d) { d["v2"][key] = path; });
				CHECK_INPUT_ERROR(record_from_json(doc.dump()),
						  std::string("'v2.") + key + "'");
			}
		}
		// The root cgroup is never one the hooks create or remove.
		json root =
			edited(v1_record(), [&](json &d) { d["v1"]["hierarchies"][0]["overhead"] = "/"; });
		CHECK_INPUT_ERROR(record_from_json(root.dump()), "'v1.hierarchies[0].overhead'");
		json v2_root = edited(v2_record(), [&](json &d) { d["v2"]["sandbox"] = "/"; });
		CHECK_INPUT_ERROR(record_from_json(v2_root.dump()), "'v2.sandbox'");
	}

	TEST_CASE("write, read, remove in a directory")
	{
		unit::TempDir dir;
		std::string records = dir / "records";
		Record record = v1_record();
		CHECK(record_path(records, "abc") == records + "/abc.json");

		write_record(records, record);
		struct stat st {};
		REQUIRE(::stat(records.c_str(), &st) == 0);
		CHECK((st.st_mode & 0777) == 0700);
		REQUIRE(::stat(record_path(records, "abc").c_str(), &st) == 0);
		CHECK((st.st_mode & 0777) == 0600);
		// Atomic: the temp file was renamed, nothing else is left.
		CHECK(entries(records) == std::set<std::string>{"abc.json"});

		auto back = read_record(records, "abc", "abc");
		REQUIRE(back);
		check_same(*back, record);

		// Written again (poststart after createRuntime): replaced, still one file.
		record.vcpus = {1, 2};
		write_record(records, record);
		CHECK(entries(records) == std::set<std::string>{"abc.json"});
		CHECK(read_record(records, "abc", "abc")->vcpus == std::vector<pid_t>{1, 2});

		CHECK_FALSE(remove_record(records, "abc"));
		CHECK(entries(records).empty());
		CHECK_FALSE(read_record(records, "abc", "abc"));
		// ENOENT counts as done.
		CHECK_FALSE(remove_record(records, "abc"));
		CHECK_FALSE(remove_record(dir / "no-such-dir", "abc"));
	}

	TEST_CASE("create_record: exclusive; record_names lists the records, not the temp files")
	{
		unit::TempDir dir;
		Record record = v2_record();
		CHECK(create_record(dir.path(), record));
		record.vcpus = {1, 2, 3};
		CHECK_FALSE(create_record(dir.path(), record)); // one instance, one record: never replaced
		CHECK(read_record(dir.path(), record.name, record.id)->vcpus == std::vector<pid_t>{78});
		write_record(dir.path(), record); // the owner's later writes replace it
		CHECK(read_record(dir.path(), record.name, record.id)->vcpus == std::vector<pid_t>{1, 2, 3});
		CHECK(entries(dir.path()) == std::set<std::string>{record.name + ".json"});
		dir.write(".x.json.12", "{}");
		dir.write("notes.txt", "");
		write_record(dir.path(), v1_record());
		CHECK(record_names(dir.path()) == std::vector<std::string>{"abc", record.name});
	}

	TEST_CASE("replace_record: rewrites a record that is there, never brings back one that was removed")
	{
		unit::TempDir dir;
		Record record = v2_record();
		CHECK_FALSE(replace_record(dir.path(), record)); // none yet: nothing is made
		CHECK(entries(dir.path()).empty());
		REQUIRE(create_record(dir.path(), record));
		record.vcpus = {5, 6};
		CHECK(replace_record(dir.path(), record));
		CHECK(read_record(dir.path(), record.name, record.id)->vcpus == std::vector<pid_t>{5, 6});
		CHECK(entries(dir.path()) == std::set<std::string>{record.name + ".json"}); // no temp file
		CHECK_FALSE(remove_record(dir.path(), record.name));                        // poststop
		CHECK_FALSE(replace_record(dir.path(), record)); // a watcher's late write
		CHECK(entries(dir.path()).empty());
	}

	TEST_CASE("read_record: a version 1 record is found by the id when there is none of the name")
	{
		unit::TempDir dir;
		dir.write("abc.json", v1_format_v1_host);
		auto record = read_record(dir.path(), "abc-0123456789abcdef", "abc");
		REQUIRE(record);
		CHECK(record->name == "abc");
		CHECK_FALSE(remove_record(dir.path(), record->name));
		CHECK(entries(dir.path()).empty());
	}

	TEST_CASE("read_record: missing, malformed, another id, unreadable")
	{
		unit::TempDir dir;
		CHECK_FALSE(read_record(dir.path(), "abc", "abc"));
		CHECK_FALSE(read_record(dir / "no-such-dir", "abc", "abc"));

		// The record is the host's own file: a corrupt one is a HostError (exit 1), not bad input.
		dir.write("abc.json", "{\"version\": 1,");
		CHECK_HOST_ERROR(read_record(dir.path(), "abc", "abc"), dir / "abc.json");

		dir.write("abc.json", "");
		CHECK_HOST_ERROR(read_record(dir.path(), "abc", "abc"), "record");

		dir.write("abc.json", record_to_json(v2_record()));
		CHECK_HOST_ERROR(read_record(dir.path(), "abc", "abc"), "'def.1-0123456789abcdef'");

		std::filesystem::remove(dir / "abc.json");
		std::filesystem::create_directory(dir / "abc.json");
		CHECK_HOST_ERROR(read_record(dir.path(), "abc", "abc"), "not a regular file");
	}

	TEST_CASE("remove_record: temp files of a killed writer go too, other containers' files stay")
	{
		unit::TempDir dir;
		write_record(dir.path(), v1_record());
		dir.write(".abc.json.123", "{\"partial");
		dir.write(".abc.json.4567", "");
		dir.write("abcd.json", "{}");
		dir.write(".abcd.json.123", "{}");
		dir.write("other.json", "{}");
		CHECK_FALSE(remove_record(dir.path(), "abc"));
		CHECK(entries(dir.path()) ==
		      std::set<std::string>{"abcd.json", ".abcd.json.123", "other.json"});

		// Only the temp file remains: it goes, and the missing record is not an error.
		dir.write(".abc.json.99", "");
		CHECK_FALSE(remove_record(dir.path(), "abc"));
		CHECK(entries(dir.path()) ==
		      std::set<std::string>{"abcd.json", ".abcd.json.123", "other.json"});
	}

	TEST_CASE("remove_record: the temp file of a container whose id extends this one's stays")
	{
		// "abc.json" is a valid container id; its writer's temp file is ".abc.json.json.<pid>", which
		// starts with ".abc.json.", the temp prefix of container "abc".
		unit::TempDir dir;
		dir.write(".abc.json.json.123", "{}");
		dir.write(".abc.json.x.json.7", "{}");
		CHECK_FALSE(remove_record(dir.path(), "abc"));
		CHECK(entries(dir.path()) ==
		      std::set<std::string>{".abc.json.json.123", ".abc.json.x.json.7"});
	}

	TEST_CASE("write_record: the directory cannot be made")
	{
		unit::TempDir dir;
		std::string file = dir.write("file", "x");
		CHECK_THROWS_AS(write_record(file + "/records", v1_record()), std::system_error);
		CHECK_THROWS_AS(write_record(dir / "a/b/c", v1_record()), std::system_error);
	}
}
