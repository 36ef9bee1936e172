// vmm-cgroup-install (install/): the marked block, and each engine's install and uninstall on real files in
// a temporary host root: Debian's own /etc/containerd/config.toml as the containerd package ships it, a
// node's config.toml with other runtimes and CNI settings, a containerd 2.x config, a CRI-O drop-in set, a
// containers.conf, broken files. And the example configuration the package ships.
#include <sys/stat.h>

#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "config.h"
#include "helpers.h"
#include "installer.h"
#include "toml_text.h"
#include "wrapper_config.h"

using namespace vmmcg::install;

namespace {

const std::string data = "../data/";

std::string slurp(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	REQUIRE_MESSAGE(in.good(), "cannot read " << path);
	std::stringstream out;
	out << in.rdbuf();
	return out.str();
}

bool exists(const std::string &path)
{
	return std::filesystem::exists(std::filesystem::symlink_status(path));
}

// A temporary host root with the given files copied in (host path -> file in tests/data).
struct Host {
	unit::TempDir dir;
	HostRoot root;

	explicit Host(std::initializer_list<std::pair<std::string, std::string>> files = {})
		: root(dir.path())
	{
		for (const auto &[host_path, source] : files)
			dir.write(host_path.substr(1), slurp(data + source));
	}
	std::string path(const std::string &host_path) const { return dir.path() + host_path; }
	std::string read(const std::string &host_path) const { return slurp(path(host_path)); }
};

Defaults defaults()
{
	return {"/usr/libexec/vmm-cgroup-hooks", "/usr/share/containers/oci/hooks.d",
		"/etc/vmm-cgroup-hooks/runtime.json", "/etc/vmm-cgroup-hooks/config.json"};
}

Settings settings(Engine engine, Action action, const std::string &prefix = "/usr")
{
	Settings s;
	s.engine = engine;
	s.action = action;
	s.hook_dir = prefix + "/libexec/vmm-cgroup-hooks";
	s.hooks_d = prefix + "/share/containers/oci/hooks.d";
	s.wrapper = s.hook_dir + "/vmm-cgroup-runtime";
	return s;
}

std::vector<std::string> run(const Host &host, const Settings &s)
{
	return apply(host.root, plan(host.root, s, defaults()));
}

std::string joined(const std::vector<std::string> &lines)
{
	std::string out;
	for (const auto &line : lines)
		out += line + "\n";
	return out;
}

const std::string containerd_conf = "/etc/containerd/config.toml";
const std::string cri = "io.containerd.grpc.v1.cri";

toml::table parsed(const Host &host, const std::string &host_path)
{
	return parse_toml(host.read(host_path), host_path);
}

toml::node_view<const toml::node> handler_of(const toml::table &t, const std::string &plugin,
					     const std::string &h)
{
	return t["plugins"][plugin]["containerd"]["runtimes"][h];
}

} // namespace

TEST_SUITE("install")
{
	TEST_CASE("the marked block: found, appended, replaced, removed back to the original")
	{
		const std::string original = "a = 1\n\n[t]\nb = 2\n";
		std::string with = append_block(original, "handler vmm", "[x]\nc = 3\n");
		CHECK(with == original + "\n# BEGIN vmm-cgroup-hooks handler vmm\n[x]\nc = 3\n# END "
					 "vmm-cgroup-hooks handler vmm\n");
		auto block = find_block(with, "handler vmm", "f");
		REQUIRE(block);
		CHECK(remove_block(with, *block) == original);
		CHECK_FALSE(find_block(with, "handler other", "f"));
		CHECK(has_block(with));
		CHECK_FALSE(has_block(original));
		std::string replaced = replace_block(with, *block, "handler vmm", "[x]\nc = 4\n");
		CHECK(replaced.find("c = 4") != std::string::npos);
		CHECK(replaced.find("c = 3") == std::string::npos);
		std::string top = prepend_block(original, "imports", "imports = []\n");
		CHECK(top.starts_with("# BEGIN vmm-cgroup-hooks imports\n"));
		CHECK(remove_block(top, *find_block(top, "imports", "f")) == original);
		// a file without a final newline still gets the block on lines of its own
		CHECK(append_block("a = 1", "t", "b = 2\n").starts_with("a = 1\n\n# BEGIN"));
		CHECK_INPUT_ERROR(find_block("# BEGIN vmm-cgroup-hooks t\nx = 1\n", "t", "f"),
				  "without '# END");
		CHECK_INPUT_ERROR(find_block("# END vmm-cgroup-hooks t\n", "t", "f"), "without '# BEGIN");
		CHECK_INPUT_ERROR(find_block(with + with, "handler vmm", "f"), "appears twice");
	}

	TEST_CASE("TOML: errors name the line; quoting and keys")
	{
		CHECK_INPUT_ERROR(parse_toml(slurp(data + "containerd/broken.toml"), "config.toml"),
				  "config.toml: not valid TOML (line 3");
		CHECK(toml_quote("a\"b\\c\n") == "\"a\\\"b\\\\c\\u000A\"");
		CHECK(toml_key("runc") == "runc");
		CHECK(toml_key("io.containerd.grpc.v1.cri") == "\"io.containerd.grpc.v1.cri\"");
		CHECK(valid_handler("vmm"));
		CHECK(valid_handler("kata-qemu2"));
		CHECK_FALSE(valid_handler("Vmm"));
		CHECK_FALSE(valid_handler("a.b"));
		CHECK_FALSE(valid_handler("-a"));
		CHECK_FALSE(valid_handler(""));
		CHECK_FALSE(valid_handler(std::string(64, 'a')));
	}

	TEST_CASE("containerd: Debian's config.toml gets the handler, once, with a backup, and back")
	{
		Host host({{containerd_conf, "containerd/debian-config.toml"}});
		const std::string original = host.read(containerd_conf);
		auto said = run(host, settings(Engine::containerd, Action::install));
		INFO(joined(said));
		const std::string edited = host.read(containerd_conf);
		CHECK(edited.starts_with(original)); // the user's text is untouched, the block comes after it
		CHECK(host.read(containerd_conf + ".vmmcg-backup") == original);
		toml::table t = parse_toml(edited, "edited");
		auto h = handler_of(t, cri, "vmm");
		CHECK(h["runtime_type"].value<std::string>() == "io.containerd.runc.v2");
		CHECK(h["options"]["BinaryName"].value<std::string>() ==
		      "/usr/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime");
		CHECK_FALSE(h["options"]["SystemdCgroup"]); // Debian's default handler sets none
		CHECK(h["pod_annotations"][0].value<std::string>() == "io.vmm-cgroup-hooks.*");
		// CNI and opt settings as they were
		CHECK(t["plugins"][cri]["cni"]["bin_dir"].value<std::string>() == "/usr/lib/cni");
		CHECK(t["plugins"]["io.containerd.internal.v1.opt"]["path"].value<std::string>() ==
		      "/var/lib/containerd/opt");
		CHECK(joined(said).find("systemctl restart containerd") != std::string::npos);
		// the wrapper's defaults are the package's: no runtime.json
		CHECK_FALSE(exists(host.path("/etc/vmm-cgroup-hooks")));

		// idempotent: nothing written the second time
		struct stat before {};
		REQUIRE(::stat(host.path(containerd_conf).c_str(), &before) == 0);
		said = run(host, settings(Engine::containerd, Action::install));
		CHECK(host.read(containerd_conf) == edited);
		struct stat after {};
		REQUIRE(::stat(host.path(containerd_conf).c_str(), &after) == 0);
		CHECK(before.st_ino == after.st_ino);
		CHECK(joined(said).find("restart") == std::string::npos);

		said = run(host, settings(Engine::containerd, Action::uninstall));
		INFO(joined(said));
		CHECK(host.read(containerd_conf) == original);
		CHECK_FALSE(exists(host.path(containerd_conf + ".vmmcg-backup")));
		said = run(host, settings(Engine::containerd, Action::uninstall));
		CHECK(joined(said).find("nothing of vmm-cgroup-hooks is registered") != std::string::npos);
		CHECK(host.read(containerd_conf) == original);
	}

	TEST_CASE("containerd: a node with other runtimes and CNI: only the handler is added, options copied")
	{
		Host host({{containerd_conf, "containerd/runtimes-cni.toml"}});
		const std::string original = host.read(containerd_conf);
		::chmod(host.path(containerd_conf).c_str(), 0600);
		Settings s = settings(Engine::containerd, Action::install, "/opt/vmm-cgroup-hooks");
		s.runtime = "/usr/bin/crun";
		auto said = run(host, s);
		INFO(joined(said));
		const std::string edited = host.read(containerd_conf);
		CHECK(edited.starts_with(original));
		CHECK(edited.find("# Kata Containers (kata-deploy)") != std::string::npos);
		struct stat st {};
		REQUIRE(::stat(host.path(containerd_conf).c_str(), &st) == 0);
		CHECK((st.st_mode & 0777) == 0600); // mode kept
		toml::table t = parse_toml(edited, "edited");
		auto h = handler_of(t, cri, "vmm");
		CHECK(h["options"]["BinaryName"].value<std::string>() ==
		      "/opt/vmm-cgroup-hooks/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime");
		CHECK(h["options"]["SystemdCgroup"].value<bool>() == true); // from runc's options
		CHECK(h["options"]["Root"].value<std::string>() == "/run/containerd/runc");
		CHECK(handler_of(t, cri, "nvidia")["options"]["BinaryName"].value<std::string>() ==
		      "/usr/bin/nvidia-container-runtime");
		CHECK(handler_of(t, cri, "kata-qemu")["runtime_type"].value<std::string>() ==
		      "io.containerd.kata-qemu.v2");
		CHECK(t["plugins"][cri]["cni"]["max_conf_num"].value<int64_t>() == 1);
		CHECK(t["metrics"]["address"].value<std::string>() == "127.0.0.1:1338");
		// the wrapper's configuration: the real runtime and the hooks' directory of this prefix
		auto wrapper = vmmcg::runtime::parse_wrapper_config(
			host.read("/etc/vmm-cgroup-hooks/runtime.json"), {});
		CHECK(wrapper.runtime == "/usr/bin/crun");
		CHECK(wrapper.hook_dir == "/opt/vmm-cgroup-hooks/libexec/vmm-cgroup-hooks");

		// a second handler of another name: a block of its own
		Settings second = s;
		second.handler = "vmm-crun";
		run(host, second);
		t = parsed(host, containerd_conf);
		CHECK(handler_of(t, cri, "vmm-crun"));
		CHECK(handler_of(t, cri, "vmm"));

		// the handler exists and is not ours: left alone
		Settings taken = s;
		taken.handler = "nvidia";
		const std::string before = host.read(containerd_conf);
		CHECK_INPUT_ERROR(plan(host.root, taken, defaults()), "'nvidia' exists already");
		CHECK(host.read(containerd_conf) == before);

		Settings remove = settings(Engine::containerd, Action::uninstall);
		remove.handler = "vmm-crun";
		run(host, remove);
		CHECK(exists(host.path("/etc/vmm-cgroup-hooks/runtime.json"))); // "vmm" still uses it
		remove.handler = "vmm";
		said = run(host, remove);
		INFO(joined(said));
		CHECK(host.read(containerd_conf) == original);
		CHECK_FALSE(exists(host.path(containerd_conf + ".vmmcg-backup")));
		CHECK_FALSE(exists(
			host.path("/etc/vmm-cgroup-hooks"))); // written by install, removed with the last
	}

	TEST_CASE("containerd: an edit after the install is kept, and so is the backup")
	{
		Host host({{containerd_conf, "containerd/debian-config.toml"}});
		const std::string original = host.read(containerd_conf);
		run(host, settings(Engine::containerd, Action::install));
		std::string edited = host.read(containerd_conf) + "\n[debug]\n  level = \"debug\"\n";
		host.dir.write(containerd_conf.substr(1), edited);
		auto said = run(host, settings(Engine::containerd, Action::uninstall));
		CHECK(host.read(containerd_conf) == original + "\n[debug]\n  level = \"debug\"\n");
		CHECK(host.read(containerd_conf + ".vmmcg-backup") == original);
		CHECK(joined(said).find("kept") != std::string::npos);
	}

	TEST_CASE("containerd: no config.toml: one is created, and removed again")
	{
		Host host;
		run(host, settings(Engine::containerd, Action::install));
		toml::table t = parsed(host, containerd_conf);
		CHECK(t["version"].value<int64_t>() == 2);
		CHECK(handler_of(t, cri, "vmm"));
		CHECK_FALSE(exists(host.path(containerd_conf + ".vmmcg-backup")));
		run(host, settings(Engine::containerd, Action::uninstall));
		CHECK_FALSE(exists(host.path(containerd_conf)));
	}

	TEST_CASE("containerd: a file it cannot parse, a version 1 file, a symbolic link: left alone, exit 2")
	{
		Host host({{containerd_conf, "containerd/broken.toml"}});
		const std::string broken = host.read(containerd_conf);
		CHECK_INPUT_ERROR(plan(host.root, settings(Engine::containerd, Action::install), defaults()),
				  "not valid TOML (line 3");
		CHECK(host.read(containerd_conf) == broken);
		CHECK_FALSE(exists(host.path(containerd_conf + ".vmmcg-backup")));

		Host v1;
		v1.dir.write(containerd_conf.substr(1), "[plugins.cri]\n  sandbox_image = \"pause\"\n");
		CHECK_INPUT_ERROR(plan(v1.root, settings(Engine::containerd, Action::install), defaults()),
				  "no 'version' key");

		Host linked({{"/etc/containerd/real.toml", "containerd/debian-config.toml"}});
		std::filesystem::create_symlink("real.toml", linked.path(containerd_conf));
		CHECK_INPUT_ERROR(
			plan(linked.root, settings(Engine::containerd, Action::install), defaults()),
			"a symbolic link");

		Settings bad = settings(Engine::containerd, Action::install);
		bad.handler = "VMM";
		CHECK_INPUT_ERROR(plan(linked.root, bad, defaults()), "must be a DNS label");
	}

	TEST_CASE("containerd 2.x (version 3): a drop-in, imported by config.toml")
	{
		Host host({{containerd_conf, "containerd/v3-config.toml"}});
		const std::string original = host.read(containerd_conf);
		auto said = run(host, settings(Engine::containerd, Action::install));
		INFO(joined(said));
		toml::table main = parsed(host, containerd_conf);
		CHECK(main["imports"][0].value<std::string>() ==
		      "/etc/containerd/conf.d/50-vmm-cgroup-hooks.toml");
		CHECK(host.read(containerd_conf).ends_with(original));
		toml::table drop = parsed(host, "/etc/containerd/conf.d/50-vmm-cgroup-hooks.toml");
		CHECK(drop["version"].value<int64_t>() == 3);
		auto h = handler_of(drop, "io.containerd.cri.v1.runtime", "vmm");
		CHECK(h["options"]["BinaryName"].value<std::string>() ==
		      "/usr/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime");
		CHECK(h["options"]["SystemdCgroup"].value<bool>() == true);
		CHECK(host.read(containerd_conf + ".vmmcg-backup") == original);
		run(host, settings(Engine::containerd, Action::install));
		CHECK(parsed(host, containerd_conf) == main);

		run(host, settings(Engine::containerd, Action::uninstall));
		CHECK(host.read(containerd_conf) == original);
		CHECK_FALSE(exists(host.path("/etc/containerd/conf.d")));
		CHECK_FALSE(exists(host.path(containerd_conf + ".vmmcg-backup")));

		// imports that already cover the drop-in: config.toml is not touched
		Host globbed;
		globbed.dir.write(containerd_conf.substr(1), "version = 3\nimports = [\"conf.d/*.toml\"]\n");
		run(globbed, settings(Engine::containerd, Action::install));
		CHECK(globbed.read(containerd_conf) == "version = 3\nimports = [\"conf.d/*.toml\"]\n");
		CHECK(exists(globbed.path("/etc/containerd/conf.d/50-vmm-cgroup-hooks.toml")));
		// imports that do not: left alone
		Host other;
		other.dir.write(containerd_conf.substr(1),
				"version = 3\nimports = [\"/etc/other/*.toml\"]\n");
		CHECK_INPUT_ERROR(plan(other.root, settings(Engine::containerd, Action::install), defaults()),
				  "does not include /etc/containerd/conf.d/50-vmm-cgroup-hooks.toml");
	}

	TEST_CASE(
		"CRI-O: a drop-in beside the distribution's and kata-deploy's, runtime_root from the default")
	{
		Host host({{"/etc/crio/crio.conf", "crio/crio.conf"},
			   {"/etc/crio/crio.conf.d/01-crio-runc.conf", "crio/crio.conf.d/01-crio-runc.conf"},
			   {"/etc/crio/crio.conf.d/10-kata.conf", "crio/crio.conf.d/10-kata.conf"}});
		const std::string main_before = host.read("/etc/crio/crio.conf");
		auto said = run(host, settings(Engine::crio, Action::install));
		INFO(joined(said));
		const std::string ours = "/etc/crio/crio.conf.d/50-vmm-cgroup-hooks.conf";
		toml::table t = parsed(host, ours);
		auto h = t["crio"]["runtime"]["runtimes"]["vmm"];
		CHECK(h["runtime_path"].value<std::string>() ==
		      "/usr/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime");
		CHECK(h["runtime_type"].value<std::string>() == "oci");
		CHECK(h["runtime_root"].value<std::string>() == "/run/runc");
		CHECK(joined(said).find("systemctl reload crio") != std::string::npos);
		CHECK(host.read("/etc/crio/crio.conf") == main_before);
		const std::string once = host.read(ours);
		run(host, settings(Engine::crio, Action::install));
		CHECK(host.read(ours) == once);

		Settings taken = settings(Engine::crio, Action::install);
		taken.handler = "kata-qemu";
		CHECK_INPUT_ERROR(plan(host.root, taken, defaults()),
				  "10-kata.conf: the runtime handler 'kata-qemu' exists");

		run(host, settings(Engine::crio, Action::uninstall));
		CHECK_FALSE(exists(host.path(ours)));
		CHECK(exists(host.path("/etc/crio/crio.conf.d/10-kata.conf")));

		// a broken drop-in would stop CRI-O itself: nothing is written
		host.dir.write("etc/crio/crio.conf.d/20-broken.conf", slurp(data + "crio/broken.conf"));
		CHECK_INPUT_ERROR(plan(host.root, settings(Engine::crio, Action::install), defaults()),
				  "20-broken.conf: not valid TOML");
		CHECK_FALSE(exists(host.path(ours)));
	}

	TEST_CASE("podman: nothing with the default hook directory; a drop-in for another prefix")
	{
		Host plain;
		auto said = run(plain, settings(Engine::podman, Action::install));
		CHECK(joined(said).find("nothing to change") != std::string::npos);
		CHECK(joined(said).find("\"opt_in\": \"annotation\"") != std::string::npos);
		CHECK_FALSE(exists(plain.path("/etc/containers")));

		Host host({{"/etc/containers/containers.conf", "podman/containers.conf"}});
		host.dir.write("etc/vmm-cgroup-hooks/config.json", "{\"opt_in\": \"annotation\"}\n");
		said = run(host, settings(Engine::podman, Action::install));
		INFO(joined(said));
		const std::string ours = "/etc/containers/containers.conf.d/50-vmm-cgroup-hooks.conf";
		toml::table t = parsed(host, ours);
		auto dirs = t["engine"]["hooks_dir"];
		CHECK(dirs[0].value<std::string>() == "/etc/containers/oci/hooks.d"); // the node owner's kept
		CHECK(dirs[1].value<std::string>() == "/usr/share/containers/oci/hooks.d");
		CHECK(joined(said).find("opt_in") == std::string::npos);

		Host opt;
		said = run(opt, settings(Engine::podman, Action::install, "/opt/vmm-cgroup-hooks"));
		t = parsed(opt, ours);
		CHECK(t["engine"]["hooks_dir"][1].value<std::string>() ==
		      "/opt/vmm-cgroup-hooks/share/containers/oci/hooks.d");
		run(opt, settings(Engine::podman, Action::uninstall, "/opt/vmm-cgroup-hooks"));
		CHECK_FALSE(exists(opt.path(ours)));

		Settings runtime = settings(Engine::podman, Action::install);
		runtime.runtime = "/usr/bin/crun";
		CHECK_INPUT_ERROR(plan(opt.root, runtime, defaults()),
				  "--runtime and --hook-config are for containerd");
	}

	TEST_CASE("runtime.json: an existing file is merged, kept as a backup, and put back")
	{
		Host host({{containerd_conf, "containerd/debian-config.toml"}});
		const std::string mine = "{\n  \"hook_timeout_s\": 20\n}\n";
		host.dir.write("etc/vmm-cgroup-hooks/runtime.json", mine);
		Settings s = settings(Engine::containerd, Action::install);
		s.runtime = "/usr/bin/runc";
		run(host, s);
		auto wrapper = vmmcg::runtime::parse_wrapper_config(
			host.read("/etc/vmm-cgroup-hooks/runtime.json"), {});
		CHECK(wrapper.hook_timeout_s == 20);
		CHECK(wrapper.runtime == "/usr/bin/runc");
		CHECK(host.read("/etc/vmm-cgroup-hooks/runtime.json.vmmcg-backup") == mine);
		run(host, settings(Engine::containerd, Action::uninstall));
		CHECK(host.read("/etc/vmm-cgroup-hooks/runtime.json") == mine);
		CHECK_FALSE(exists(host.path("/etc/vmm-cgroup-hooks/runtime.json.vmmcg-backup")));

		host.dir.write("etc/vmm-cgroup-hooks/runtime.json", "{\"runtime\": ");
		CHECK_INPUT_ERROR(plan(host.root, s, defaults()), "runtime.json: not valid JSON");
		host.dir.write("etc/vmm-cgroup-hooks/runtime.json", "{\"runtimes\": \"/x\"}");
		CHECK_INPUT_ERROR(plan(host.root, s, defaults()), "field 'runtimes': unknown");
	}

	TEST_CASE("the host root: absolute symbolic links of the host resolve inside it")
	{
		Host host({{"/usr/etc/containerd/config.toml", "containerd/debian-config.toml"}});
		std::filesystem::create_symlink("/usr/etc", host.path("/etc"));
		run(host, settings(Engine::containerd, Action::install));
		CHECK(handler_of(parsed(host, "/usr/etc/containerd/config.toml"), cri, "vmm"));
		CHECK(exists(host.path("/usr/etc/containerd/config.toml.vmmcg-backup")));
	}

	TEST_CASE("the example configuration the package ships parses as the hooks and the wrapper read it")
	{
		vmmcg::Config config = vmmcg::parse_config(slurp("../../docs/examples/config.json"));
		vmmcg::Config builtin;
		CHECK(config.opt_in == builtin.opt_in);
		CHECK(config.overhead_controllers == builtin.overhead_controllers);
		CHECK(config.overhead_cap_percent == builtin.overhead_cap_percent);
		CHECK(config.vmm_names == builtin.vmm_names);
		auto wrapper =
			vmmcg::runtime::parse_wrapper_config(slurp("../../docs/examples/runtime.json"), {});
		CHECK(wrapper.hook_dir == "/usr/libexec/vmm-cgroup-hooks");
	}
}
