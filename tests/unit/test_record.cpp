#include "record.h"

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <set>
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
	record.layout.host = HostMode::hybrid;
	record.layout.mode = Mode::split;
	Target cpu;
	cpu.mount = "/sys/fs/cgroup/cpu,cpuacct";
	cpu.controllers = "cpu,cpuacct";
	cpu.sandbox = "/machine/abc";
	cpu.vcpu = "/machine/abc";
	cpu.overhead = "/a/b/abc";
	cpu.create = {{"/a", true, false}, {"/a/b", true, false}, {"/a/b/abc", false, false}};
	Target cpuset = cpu;
	cpuset.mount = "/sys/fs/cgroup/cpuset";
	cpuset.controllers = "cpuset";
	cpuset.sandbox = "/machine/abc-set";
	cpuset.vcpu = "/machine/abc-set";
	record.layout.targets = {cpu, cpuset};
	record.adopted = {"/sys/fs/cgroup/cpuset/a/b/abc"};
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
	record.layout.host = HostMode::v2;
	record.layout.mode = Mode::split;
	Target target;
	target.mount = "/sys/fs/cgroup";
	target.controllers = "unified";
	target.v2 = true;
	target.sandbox = "/machine.slice/libpod-def.scope";
	target.vcpu = "/machine.slice/libpod-def.scope/vcpu";
	target.overhead = "/machine.slice/libpod-def.scope/overhead";
	target.create = {{target.vcpu, false, true}, {target.overhead, false, true}};
	record.layout.targets = {target};
	record.enabled = {"cpu", "cpuset"};
	record.saved = {{"cpu.max", "50000 100000"}};
	record.relaxed = true;
	record.qmp_socket = "/run/vm/qmp.sock";
	record.vmm = ProcessRef{77, 1};
	record.vcpus = {78};
	record.vcpu_source = "qmp";
	return record;
}

void check_same(const Record &a, const Record &b)
{
	CHECK(a.id == b.id);
	CHECK(a.layout.host == b.layout.host);
	CHECK(a.layout.mode == b.layout.mode);
	REQUIRE(a.layout.targets.size() == b.layout.targets.size());
	for (std::size_t i = 0; i < a.layout.targets.size(); ++i) {
		const Target &x = a.layout.targets[i];
		const Target &y = b.layout.targets[i];
		CAPTURE(i);
		CHECK(x.mount == y.mount);
		CHECK(x.controllers == y.controllers);
		CHECK(x.v2 == y.v2);
		CHECK(x.sandbox == y.sandbox);
		CHECK(x.vcpu == y.vcpu);
		CHECK(x.overhead == y.overhead);
		REQUIRE(x.create.size() == y.create.size());
		for (std::size_t j = 0; j < x.create.size(); ++j) {
			CAPTURE(j);
			CHECK(x.create[j].path == y.create[j].path);
			CHECK(x.create[j].shared == y.create[j].shared);
			CHECK(x.create[j].threaded == y.create[j].threaded);
		}
	}
	CHECK(a.adopted == b.adopted);
	CHECK(a.enabled == b.enabled);
	CHECK(a.saved == b.saved);
	CHECK(a.relaxed == b.relaxed);
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

// The record as a document, the way record_to_json built it before it wrote the text directly: the
// reference its output must match byte for byte.
json process_document(const std::optional<ProcessRef> &ref)
{
	return ref ? json{{"pid", ref->pid}, {"start_time", ref->start_time}} : json();
}

json reference_document(const Record &record)
{
	json targets = json::array();
	for (const auto &target : record.layout.targets) {
		json create = json::array();
		for (const auto &dir : target.create)
			create.push_back(
				{{"path", dir.path}, {"shared", dir.shared}, {"threaded", dir.threaded}});
		targets.push_back({{"mount", target.mount},
				   {"controllers", target.controllers},
				   {"v2", target.v2},
				   {"sandbox", target.sandbox},
				   {"vcpu", target.vcpu},
				   {"overhead", target.overhead},
				   {"create", create}});
	}
	return {{"version", 1},
		{"id", record.id},
		{"mode", to_string(record.layout.mode)},
		{"host", to_string(record.layout.host)},
		{"targets", targets},
		{"adopted", record.adopted},
		{"enabled", record.enabled},
		{"saved", record.saved},
		{"relaxed", record.relaxed},
		{"qmp_socket", record.qmp_socket ? json(*record.qmp_socket) : json()},
		{"vmm", process_document(record.vmm)},
		{"vcpus", record.vcpus},
		{"vcpu_source", record.vcpu_source},
		{"settler", process_document(record.settler)}};
}

json edited(const Record &record, const std::function<void(json &)> &edit)
{
	json doc = json::parse(record_to_json(record));
	edit(doc);
	return doc;
}

} // namespace

TEST_SUITE("record")
{
	TEST_CASE("record_to_json writes what nlohmann's dump() of the document writes, byte for byte")
	{
		Record empty;
		empty.id = "e";
		Record escapes = v2_record();
		escapes.qmp_socket = "/run/a \"quoted\" \\ path\twith\x01control";
		escapes.saved = {{"cpu.max", "50000 100000"}};
		escapes.layout.targets[0].sandbox = "/k\xc3\xa9/\xe2\x82\xac"; // UTF-8: é, €
		Record many = v1_record();
		for (pid_t tid = 1; tid < 300; ++tid)
			many.vcpus.push_back(tid * 7);
		many.vmm = ProcessRef{4194304, 18446744073709551615ULL};
		for (const Record &record : {v1_record(), v2_record(), empty, escapes, many}) {
			CAPTURE(record.id);
			CHECK(record_to_json(record) == reference_document(record).dump() + "\n");
		}
		// Not UTF-8: refused as the document refused it, not written as something unreadable.
		Record bad = v1_record();
		bad.layout.targets[0].mount = "/sys/fs/cgroup/\xff";
		CHECK_THROWS_AS(record_to_json(bad), json::type_error);
	}

	TEST_CASE("round trip: v1 layout with VMM, settler, vCPUs and adopted cgroups")
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
		record.layout.mode = Mode::sandbox_only;
		Record back = record_from_json(record_to_json(record));
		check_same(back, record);
		CHECK_FALSE(back.vmm);
		CHECK_FALSE(back.settler);
		CHECK_FALSE(back.qmp_socket);
	}

	TEST_CASE("the JSON an operator reads")
	{
		json doc = json::parse(record_to_json(v1_record()));
		CHECK(doc["version"] == 1);
		CHECK(doc["id"] == "abc");
		CHECK(doc["mode"] == "split");
		CHECK(doc["host"] == "hybrid");
		CHECK(doc["vmm"]["pid"] == 4242);
		CHECK(doc["vmm"]["start_time"] == 123456789012ULL);
		CHECK(doc["targets"][0]["create"][2]["path"] == "/a/b/abc");
		CHECK(doc["qmp_socket"].is_null());
	}

	TEST_CASE("record_from_json: malformed records")
	{
		Record record = v2_record();
		CHECK_INPUT_ERROR(record_from_json(""), "record");
		CHECK_INPUT_ERROR(record_from_json("{"), "record");
		CHECK_INPUT_ERROR(record_from_json("[]"), "record");
		CHECK_INPUT_ERROR(record_from_json("{}"), "record");
		auto bad = [&](const std::function<void(json &)> &edit) {
			return edited(record, edit).dump();
		};
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = 2; })), "version");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = "1"; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d.erase("id"); })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["mode"] = "both"; })), "mode");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["host"] = "v3"; })), "host");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["targets"] = 1; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["targets"][0].erase("mount"); })),
				  "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["targets"][0]["v2"] = "yes"; })),
				  "record");
		CHECK_INPUT_ERROR(record_from_json(bad(
					  [](json &d) { d["targets"][0]["create"][0].erase("threaded"); })),
				  "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["adopted"] = "x"; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {"a"}; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vmm"] = {{"pid", 1}}; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vmm"] = "77"; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", "x"}, {"start_time", 1}};
				  })),
				  "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["relaxed"] = 1; })), "record");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["targets"][0]["create"] = {{"k", 1}};
				  })),
				  "'create'");
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
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = 1.0; })), "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["version"] = -1e300; })), "'version'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {1e30}; })), "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {4294967297ULL}; })),
				  "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 7.5}, {"start_time", 1}};
				  })),
				  "'vmm'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 4294967297ULL}, {"start_time", 1}};
				  })),
				  "'vmm'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", 7}, {"start_time", 1e40}};
				  })),
				  "start_time");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", 7}, {"start_time", -3}};
				  })),
				  "start_time");
		// Paths and ids the record hands on are checked here, not only by the layers that use them.
		for (const char *key : {"mount", "sandbox", "vcpu", "overhead"})
			CHECK_INPUT_ERROR(
				record_from_json(bad([&](json &d) { d["targets"][0][key] = "/a/../b"; })),
				std::string("'") + key + "'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {12, -1}; })), "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = {0}; })), "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["vcpus"] = 12; })), "'vcpus'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["vmm"] = {{"pid", -1}, {"start_time", 1}};
				  })),
				  "'vmm'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["settler"] = {{"pid", 0}, {"start_time", 1}};
				  })),
				  "'settler'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["enabled"] = {"memory"}; })),
				  "'memory'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) {
					  d["saved"] = {{"cgroup.procs", "1"}};
				  })),
				  "'cgroup.procs'");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["qmp_socket"] = "../x"; })),
				  "qmp_socket");
		CHECK_INPUT_ERROR(record_from_json(bad([](json &d) { d["qmp_socket"] = 5; })), "record");
	}

	TEST_CASE("record_from_json: cgroup paths to create that could climb")
	{
		Record record = v1_record();
		for (const char *path : {"/a/../b", "../x", "/", "", "a/b", "/a//b", "/a/b/"}) {
			CAPTURE(path);
			json doc =
				edited(record, [&](json &d) { d["targets"][1]["create"][2]["path"] = path; });
			CHECK_INPUT_ERROR(record_from_json(doc.dump()), "bad cgroup path");
		}
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

		auto back = read_record(records, "abc");
		REQUIRE(back);
		check_same(*back, record);

		// Written again (poststart after createRuntime): replaced, still one file.
		record.vcpus = {1, 2};
		write_record(records, record);
		CHECK(entries(records) == std::set<std::string>{"abc.json"});
		CHECK(read_record(records, "abc")->vcpus == std::vector<pid_t>{1, 2});

		CHECK_FALSE(remove_record(records, "abc"));
		CHECK(entries(records).empty());
		CHECK_FALSE(read_record(records, "abc"));
		// ENOENT counts as done.
		CHECK_FALSE(remove_record(records, "abc"));
		CHECK_FALSE(remove_record(dir / "no-such-dir", "abc"));
	}

	TEST_CASE("read_record: missing, malformed, another id, unreadable")
	{
		unit::TempDir dir;
		CHECK_FALSE(read_record(dir.path(), "abc"));
		CHECK_FALSE(read_record(dir / "no-such-dir", "abc"));

		dir.write("abc.json", "{\"version\": 1,");
		CHECK_INPUT_ERROR(read_record(dir.path(), "abc"), dir / "abc.json");

		dir.write("abc.json", "");
		CHECK_INPUT_ERROR(read_record(dir.path(), "abc"), "record");

		dir.write("abc.json", record_to_json(v2_record()));
		CHECK_INPUT_ERROR(read_record(dir.path(), "abc"), "'def.1'");

		std::filesystem::remove(dir / "abc.json");
		std::filesystem::create_directory(dir / "abc.json");
		CHECK_INPUT_ERROR(read_record(dir.path(), "abc"), "cannot be read");
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
