#include "bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "helpers.h"

using namespace vmmcg;
using nlohmann::json;

namespace {

BundleConfig parse(const json &doc)
{
	return parse_bundle_config(doc.dump());
}

} // namespace

TEST_SUITE("bundle")
{
	TEST_CASE("process.args[0] and whether the container has a pid namespace of its own")
	{
		BundleConfig plain =
			parse_bundle_config(R"({"process":{"args":["/usr/bin/qemu-system-x86_64","-m","1"]},
			"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}})");
		CHECK(plain.program == "/usr/bin/qemu-system-x86_64");
		CHECK(plain.args == std::vector<std::string>{"/usr/bin/qemu-system-x86_64", "-m", "1"});
		CHECK_FALSE(plain.shared_pid);
		CHECK_FALSE(parse_bundle_config(R"({"linux":{"namespaces":[{"type":"pid","path":""}]}})")
				    .shared_pid);
		// Joining another process's pid namespace (a pod's with shareProcessNamespace, podman --pid
		// container:X) is sharing it: runc 1.1 and containerd's shim kill such a container through
		// its cgroups, as one in the host's.
		CHECK(parse_bundle_config(
			      R"({"linux":{"namespaces":[{"type":"mount"},{"type":"pid","path":"/proc/1/ns/pid"}]}})")
			      .shared_pid);
		CHECK(parse_bundle_config(R"({"linux":{"namespaces":[{"type":"mount"},{"type":"network"}]}})")
			      .shared_pid);
		CHECK(parse_bundle_config(R"({"linux":{}})").shared_pid);
		CHECK_INPUT_ERROR(
			parse_bundle_config(R"({"linux":{"namespaces":[{"type":"pid","path":1}]}})"),
			"'namespaces[0].path'");
		CHECK(parse_bundle_config("{}").program.empty());
		CHECK(parse_bundle_config("{}").args.empty());
		CHECK_INPUT_ERROR(parse_bundle_config(R"({"process":{"args":["sh",2]}})"), "'args[1]'");
		CHECK_INPUT_ERROR(parse_bundle_config(R"({"process":{"args":[1]}})"), "'args[0]'");
		CHECK_INPUT_ERROR(parse_bundle_config(R"({"linux":{"namespaces":{}}})"), "'namespaces'");
	}

	TEST_CASE("cgroupsPath: empty is none")
	{
		CgroupsPath path = parse_cgroups_path("");
		CHECK(path.kind == CgroupsPath::Kind::none);
		CHECK(path.path.empty());
	}

	TEST_CASE("cgroupsPath: absolute and relative")
	{
		CgroupsPath absolute = parse_cgroups_path("/machine.slice/libpod-abc");
		CHECK(absolute.kind == CgroupsPath::Kind::absolute);
		CHECK(absolute.path == "/machine.slice/libpod-abc");

		CgroupsPath relative = parse_cgroups_path("kubepods/pod1/abc");
		CHECK(relative.kind == CgroupsPath::Kind::relative);
		CHECK(relative.path == "kubepods/pod1/abc");

		CgroupsPath one = parse_cgroups_path("abc");
		CHECK(one.kind == CgroupsPath::Kind::relative);
		CHECK(one.path == "abc");
	}

	TEST_CASE("cgroupsPath: systemd slice:prefix:name")
	{
		CgroupsPath path = parse_cgroups_path("system.slice:crio:abc");
		CHECK(path.kind == CgroupsPath::Kind::systemd);
		CHECK(path.slice == "system.slice");
		CHECK(path.prefix == "crio");
		CHECK(path.name == "abc");
		CHECK(path.path.empty());

		CgroupsPath empty_slice = parse_cgroups_path(":crio:abc");
		CHECK(empty_slice.kind == CgroupsPath::Kind::systemd);
		CHECK(empty_slice.slice.empty());
		CHECK(empty_slice.prefix == "crio");
		CHECK(empty_slice.name == "abc");

		CgroupsPath nested = parse_cgroups_path("kubepods-burstable-pod1.slice:cri-o:0123abcd");
		CHECK(nested.slice == "kubepods-burstable-pod1.slice");
		CHECK(nested.prefix == "cri-o");
		CHECK(nested.name == "0123abcd");
	}

	TEST_CASE("cgroupsPath: bad systemd forms")
	{
		for (const char *bad :
		     {"a:b", ":", "::", "a:b:c:d", "system.slice:crio:abc:", "system:crio:abc",
		      "system.slicex:crio:abc", "system.slice:crio:", "::abc-but-no-slice:",
		      "system.slice/x.slice:crio:abc", "system.slice:cr/io:abc", "system.slice:crio:a/b",
		      "system.slice:crio:../abc", "/a:b:c"}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_cgroups_path(bad), "cgroupsPath");
		}
	}

	TEST_CASE("cgroupsPath: paths that could climb or are not clean")
	{
		for (const char *bad : {"/", "/a/../b", "/..", "../x", "..", ".", "./a", "a/./b", "a//b",
					"/a//b", "a/", "/a/", "/a/b/.."}) {
			CAPTURE(bad);
			CHECK_INPUT_ERROR(parse_cgroups_path(bad), "cgroupsPath");
		}
		CHECK_INPUT_ERROR(parse_cgroups_path(std::string("/a\0b", 4)), "cgroupsPath");
		CHECK(parse_cgroups_path("/a/..b/c.").kind == CgroupsPath::Kind::absolute);
	}

	TEST_CASE("config.json: the fields the hooks use")
	{
		json doc = {{"ociVersion", "1.0.2"},
			    {"process", {{"args", {"qemu-system-x86_64"}}}},
			    {"annotations", {{"io.vmm-cgroup-hooks.enable", "true"}}},
			    {"linux", {{"cgroupsPath", "machine.slice:libpod:abc"}}}};
		BundleConfig config = parse(doc);
		CHECK(config.annotations.at("io.vmm-cgroup-hooks.enable") == "true");
		CHECK(config.cgroups_path.kind == CgroupsPath::Kind::systemd);
		CHECK(config.cgroups_path.slice == "machine.slice");
	}

	TEST_CASE("config.json: everything optional")
	{
		BundleConfig config = parse(json::object());
		CHECK(config.cgroups_path.kind == CgroupsPath::Kind::none);
		CHECK(config.annotations.empty());

		CHECK(parse({{"linux", json::object()}}).cgroups_path.kind == CgroupsPath::Kind::none);
		CHECK(parse({{"linux", {{"cgroupsPath", ""}}}}).cgroups_path.kind == CgroupsPath::Kind::none);
		CHECK(parse({{"linux", {{"cgroupsPath", nullptr}}}}).cgroups_path.kind ==
		      CgroupsPath::Kind::none);
		// linux.resources is not read: the limits in effect are read from the cgroups.
		CHECK_NOTHROW(parse({{"linux", {{"resources", {{"cpu", {{"shares", "1024"}}}}}}}}));
	}

	TEST_CASE("config.json: cgroupsPath errors come through")
	{
		CHECK_INPUT_ERROR(parse({{"linux", {{"cgroupsPath", "/a/../b"}}}}), "cgroupsPath");
		CHECK_INPUT_ERROR(parse({{"linux", {{"cgroupsPath", 7}}}}), "'cgroupsPath'");
	}

	TEST_CASE("config.json: wrong types of the containers")
	{
		CHECK_INPUT_ERROR(parse({{"linux", "x"}}), "'linux'");
		CHECK_INPUT_ERROR(parse({{"annotations", {{"a", 1}}}}), "'annotations'");
		CHECK_INPUT_ERROR(parse({{"annotations", "a"}}), "'annotations'");
		CHECK_INPUT_ERROR(parse_bundle_config(""), "config.json");
		CHECK_INPUT_ERROR(parse_bundle_config("{"), "config.json: not valid JSON");
		CHECK_INPUT_ERROR(parse_bundle_config("[]"), "config.json: must be a JSON object");
	}

	TEST_CASE("read_bundle_config: a file in the bundle")
	{
		unit::TempDir dir;
		dir.write("config.json", R"({"linux":{"cgroupsPath":"/a/b"}})");
		BundleConfig config = read_bundle_config(dir.path());
		CHECK(config.cgroups_path.kind == CgroupsPath::Kind::absolute);
		CHECK(config.cgroups_path.path == "/a/b");
	}

	TEST_CASE("read_bundle_config: missing, unreadable, invalid, too large")
	{
		unit::TempDir dir;
		CHECK_INPUT_ERROR(read_bundle_config(dir.path()), dir.path() + "/config.json");
		CHECK_INPUT_ERROR(read_bundle_config(dir / "nonexistent"), "cannot be read");

		// A directory where the file should be.
		std::filesystem::create_directory(dir / "config.json");
		CHECK_INPUT_ERROR(read_bundle_config(dir.path()), "not a regular file");
		std::filesystem::remove(dir / "config.json");

		dir.write("config.json", "{\"linux\": ");
		CHECK_INPUT_ERROR(read_bundle_config(dir.path()), "not valid JSON");

		dir.write("config.json", "");
		int fd = ::open((dir / "config.json").c_str(), O_WRONLY);
		REQUIRE(fd >= 0);
		REQUIRE(::ftruncate(fd, static_cast<off_t>(max_bundle_config_size) + 1) == 0);
		::close(fd);
		CHECK_INPUT_ERROR(read_bundle_config(dir.path()), "larger than");
	}

	// A hostile bundle: config.json as a FIFO no one writes (a blocking open would hang the hook), a
	// symbolic link to a file that consumes what it gives (/proc/kmsg), or to a device.
	TEST_CASE("read_bundle_config: a FIFO, a symbolic link or a device is refused at once")
	{
		unit::TempDir dir;
		REQUIRE(::mkfifo((dir / "config.json").c_str(), 0600) == 0);
		CHECK_INPUT_ERROR(read_bundle_config(dir.path()), "not a regular file");
		std::filesystem::remove(dir / "config.json");
		for (const char *target : {"/proc/kmsg", "/dev/zero", "/etc/hostname"}) {
			CAPTURE(target);
			std::filesystem::create_symlink(target, dir / "config.json");
			CHECK_INPUT_ERROR(read_bundle_config(dir.path()), "symbolic link");
			std::filesystem::remove(dir / "config.json");
		}
		// A symbolic link higher up the bundle path is the engine's business and is followed.
		unit::TempDir real;
		real.write("config.json", "{}");
		std::filesystem::create_symlink(real.path(), dir / "bundle");
		CHECK(read_bundle_config(dir / "bundle").annotations.empty());
	}
}
