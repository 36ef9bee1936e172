// The cgroupfs access layer against the real kernel: it must not leave the cgroup mount, whatever the path.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>
#include <libcgroup.h>

#include "cgroupfs.h"
#include "harness.h"
#include "host.h"

namespace fs = std::filesystem;
using namespace vmmcg;

TEST_SUITE("integration-cgroupfs")
{
	// The hooks read /proc/self/mountinfo themselves (host.h says why); libcgroup is the reference.
	TEST_CASE("mount discovery finds the v1 hierarchies libcgroup finds")
	{
		HostMode host = detect_host_mode();
		Mounts ours = discover_mounts(host);
		REQUIRE_MESSAGE(host != HostMode::v2,
				"this test compares v1 mounts; the host is pure cgroup v2");
		REQUIRE(cgroup_init() == 0);
		std::map<std::string, std::string> theirs;
		void *handle = nullptr;
		struct cgroup_mount_point info {};
		for (int ret = cgroup_get_controller_begin(&handle, &info); ret == 0;
		     ret = cgroup_get_controller_next(&handle, &info))
			if (info.path !=
			    ours.unified) // libcgroup also lists controllers of the cgroup2 mount
				theirs.emplace(info.name, info.path);
		cgroup_get_controller_end(&handle);
		REQUIRE(theirs.contains("cpu"));
		for (const auto &[name, path] : theirs) {
			INFO("controller " << name);
			CHECK(ours.v1[name] == path);
		}
		for (const char *name : {"cpu", "cpuacct", "cpuset", "memory", "pids"})
			CHECK(ours.v1.contains(name));
	}

	TEST_CASE("a mount path that is a symlink, or not a cgroup file system, is refused")
	{
		std::string link = "/sys/fs/cgroup/vmmcg-it-" + std::to_string(::getpid()) + "-link";
		fs::create_symlink("/sys/fs/cgroup/cpu", link);
		CHECK_THROWS_WITH_AS(CgroupMount::open(link), doctest::Contains("opening cgroup mount"),
				     std::system_error);
		fs::remove(link);
		CHECK_THROWS_WITH_AS(CgroupMount::open("/tmp"), doctest::Contains("not a cgroup file system"),
				     std::runtime_error);
		CHECK_THROWS(CgroupMount::open("/sys/fs/cgroup/cpu/../cpu"));
	}

	TEST_CASE("paths that climb are refused before they reach the kernel")
	{
		CgroupMount mount = CgroupMount::open("/sys/fs/cgroup/cpu");
		std::error_code ec;
		CHECK(!mount.open_file("/../memory", "tasks", O_RDONLY, ec).valid());
		CHECK(ec == std::errc::invalid_argument);
		CHECK(!mount.open_file("/", "../memory/tasks", O_RDONLY, ec).valid());
		CHECK(ec == std::errc::invalid_argument);
		CHECK(mount.make_dir("/a/../b") == std::errc::invalid_argument);
		CHECK(mount.remove_dir("/") == std::errc::invalid_argument);
		CHECK(mount.write_file("relative", "tasks", "1") == std::errc::invalid_argument);
	}

	TEST_CASE("another file system mounted inside the cgroup tree is not followed (RESOLVE_NO_XDEV)")
	{
		std::string name = "/vmmcg-it-" + std::to_string(::getpid()) + "-xdev";
		std::string dir = "/sys/fs/cgroup/cpu" + name;
		fs::create_directory(dir);
		struct Cleanup {
			std::string dir;
			~Cleanup()
			{
				::umount2(dir.c_str(), MNT_DETACH); // EINVAL once unmounted below: fine
				::rmdir(dir.c_str());
			}
		} cleanup{dir}; // even when a check below throws
		REQUIRE(::mount("none", dir.c_str(), "tmpfs", 0, "size=64k") == 0);
		std::ofstream(dir + "/tasks")
			<< "planted\n"; // a file that looks like a cgroup file, on tmpfs
		CgroupMount mount = CgroupMount::open("/sys/fs/cgroup/cpu");
		std::error_code ec;
		std::string text = mount.read_file(name, "tasks", ec);
		CHECK(ec == std::errc::cross_device_link);
		CHECK(text.empty());
		CHECK(mount.write_file(name, "tasks", "1") == std::errc::cross_device_link);
		REQUIRE(::umount2(dir.c_str(), MNT_DETACH) == 0);
		CHECK(mount.remove_dir(name) == std::error_code());
	}

	TEST_CASE("a cgroup that exists is found; one that does not is ENOENT, not an exception")
	{
		CgroupMount mount = CgroupMount::open("/sys/fs/cgroup/cpu");
		CHECK(mount.exists("/"));
		CHECK(!mount.exists("/vmmcg-it-no-such-cgroup"));
		CHECK(mount.remove_dir("/vmmcg-it-no-such-cgroup") == std::errc::no_such_file_or_directory);
		std::error_code ec;
		CHECK(!mount.read_ids("/", "tasks", ec).empty());
		CHECK(!ec);
	}
}
