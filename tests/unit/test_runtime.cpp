// vmm-cgroup-runtime's pure parts (runtime/): argument parsing, the config.json edit, runtime.json, the log
// line; and the bundle file's read and atomic replace on a temp directory.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "helpers.h"
#include "invocation.h"
#include "kill_all.h"
#include "report.h"
#include "spec_file.h"
#include "spec_hooks.h"
#include "wrapper_config.h"

using namespace vmmcg::runtime;

namespace {

Invocation parse(std::vector<std::string_view> args)
{
	return parse_invocation(args);
}

std::optional<std::string> bundle_of(std::vector<std::string_view> args)
{
	return find_bundle(args);
}

HookSettings settings()
{
	HookSettings s;
	s.create_runtime = "/h/vmm-cgroup-create-runtime";
	s.poststart = "/h/vmm-cgroup-poststart";
	s.poststop = "/h/vmm-cgroup-poststop";
	s.config = "/etc/x.json";
	s.timeout_s = 7;
	return s;
}

std::optional<std::string> kill_all_of(std::vector<std::string_view> args)
{
	return kill_all_target(args);
}

std::vector<std::string> keys(const Spec &object)
{
	std::vector<std::string> out;
	for (const auto &[key, value] : object.items())
		out.push_back(key);
	return out;
}

} // namespace

TEST_SUITE("runtime")
{
	TEST_CASE("parse_invocation: the shim's create")
	{
		auto inv = parse({"--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json",
				  "--log-format", "json", "create", "--bundle", "/b", "--pid-file",
				  "/b/init.pid", "abc"});
		CHECK(inv.command == "create");
		CHECK(inv.command_index == 6);
		CHECK(inv.log_path == "/b/log.json");
		CHECK(inv.log_format == "json");
	}

	TEST_CASE("parse_invocation: option spellings")
	{
		CHECK(parse({"--root=/r", "state", "x"}).command == "state");
		CHECK(parse({"-root", "/r", "state", "x"}).command == "state");
		CHECK(parse({"--log=/l", "--log-format=text", "kill", "x", "9"}).log_path == "/l");
		CHECK(parse({"--systemd-cgroup", "--debug", "create", "x"}).command_index == 2);
		CHECK(parse({"--criu", "/usr/sbin/criu", "--rootless", "false", "delete", "x"}).command ==
		      "delete");
		CHECK(parse({"--cgroup-manager", "cgroupfs", "run", "x"}).command == "run");
		CHECK(parse({"--unknown-flag", "start", "x"}).command == "start");
		CHECK(parse({"--", "create", "x"}).command == "create");
	}

	TEST_CASE("parse_invocation: no subcommand")
	{
		CHECK(parse({}).command_index == Invocation::npos);
		CHECK(parse({"--version"}).command.empty());
		CHECK(parse({"--help"}).command_index == Invocation::npos);
		CHECK(parse({"--root", "/r"}).command.empty());
		CHECK_INPUT_ERROR(parse({"--root"}), "missing its value");
	}

	TEST_CASE("edits_bundle")
	{
		CHECK(edits_bundle("create"));
		CHECK(edits_bundle("run"));
		for (const char *other : {"start", "state", "kill", "delete", "update", "exec", "", "Create"})
			CHECK_FALSE(edits_bundle(other));
	}

	TEST_CASE("find_bundle: the spellings runc and crun agree on")
	{
		CHECK(bundle_of({"--bundle", "/b", "id"}) == "/b");
		CHECK(bundle_of({"--bundle=/b", "id"}) == "/b");
		CHECK(bundle_of({"-b", "/b", "id"}) == "/b");
		CHECK(bundle_of({"-b/b", "id"}) == "/b");
		CHECK(bundle_of({"--pid-file", "--bundle", "--bundle", "/b", "id"}) == "/b");
		CHECK(bundle_of({"--console-socket", "/s", "--no-pivot", "--no-new-keyring", "--preserve-fds",
				 "2", "id"}) == std::nullopt);
		CHECK(bundle_of({"-d", "--keep", "--detach", "--no-subreaper", "id", "-b", "/b"}) == "/b");
		CHECK(bundle_of({"id", "--", "--bundle", "/b"}) == std::nullopt);
		CHECK(bundle_of({"--bundle", "/a", "--bundle", "/b", "id"}) == "/b");
		CHECK(bundle_of({"-pid-file", "/p", "-detach", "id"}) == std::nullopt);
		CHECK(bundle_of({}) == std::nullopt);
	}

	TEST_CASE("find_bundle: refusals")
	{
		CHECK_INPUT_ERROR(bundle_of({"-bundle", "/b", "id"}), "read this spelling differently");
		CHECK_INPUT_ERROR(bundle_of({"-b=/b", "id"}), "read this spelling differently");
		CHECK_INPUT_ERROR(bundle_of({"--config", "/c.json", "id"}), "--config is not supported");
		CHECK_INPUT_ERROR(bundle_of({"-f", "c.json", "id"}), "--config is not supported");
		CHECK_INPUT_ERROR(bundle_of({"-fc.json", "id"}), "--config is not supported");
		CHECK_INPUT_ERROR(bundle_of({"--frobnicate", "id"}), "unknown option");
		CHECK_INPUT_ERROR(bundle_of({"--bundle"}), "missing its value");
		CHECK_INPUT_ERROR(bundle_of({"--bundle="}), "empty");
	}

	TEST_CASE("parse_spec")
	{
		CHECK(parse_spec(R"({"ociVersion":"1.0.2"})").is_object());
		CHECK_INPUT_ERROR(parse_spec(""), "config.json: not valid JSON (empty file)");
		CHECK_INPUT_ERROR(parse_spec("{\"a\":"), "config.json: not valid JSON");
		CHECK_INPUT_ERROR(parse_spec("[]"), "config.json: must be a JSON object");
		CHECK_INPUT_ERROR(parse_spec("{} {}"), "not valid JSON");
	}

	TEST_CASE("is_pod_sandbox")
	{
		CHECK(is_pod_sandbox(
			parse_spec(R"({"annotations":{"io.kubernetes.cri.container-type":"sandbox"}})")));
		CHECK(is_pod_sandbox(
			parse_spec(R"({"annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox"}})")));
		CHECK_FALSE(is_pod_sandbox(
			parse_spec(R"({"annotations":{"io.kubernetes.cri.container-type":"container"}})")));
		CHECK_FALSE(is_pod_sandbox(
			parse_spec(R"({"annotations":{"io.kubernetes.cri-o.ContainerType":"container"}})")));
		CHECK_FALSE(is_pod_sandbox(
			parse_spec(R"({"annotations":{"io.kubernetes.cri.container-type":1}})")));
		CHECK_FALSE(is_pod_sandbox(parse_spec(R"({"annotations":"sandbox"})")));
		CHECK_FALSE(is_pod_sandbox(parse_spec(R"({})")));
	}

	TEST_CASE("add_hooks: three entries, everything else kept in order")
	{
		Spec spec = parse_spec(
			R"({"ociVersion":"1.0.2","process":{"args":["qemu"],"env":["A=1"]},)"
			R"("root":{"path":"rootfs"},"annotations":{"z":"1","a":"2"},"linux":{"x":1.5}})");
		Spec before = spec;
		CHECK(add_hooks(spec, settings()));
		CHECK(keys(spec) == std::vector<std::string>{"ociVersion", "process", "root", "annotations",
							     "linux", "hooks"});
		for (const char *key : {"ociVersion", "process", "root", "linux"})
			CHECK(spec[key] == before[key]);
		CHECK(spec["annotations"] ==
		      before["annotations"]); // no enable annotation: the gate argument
		CHECK(keys(spec["hooks"]) ==
		      std::vector<std::string>{"createRuntime", "poststart", "poststop"});
		const Spec &entry = spec["hooks"]["createRuntime"][0];
		CHECK(entry["path"] == "/h/vmm-cgroup-create-runtime");
		CHECK(entry["args"] == Spec::array({"/h/vmm-cgroup-create-runtime", "--config", "/etc/x.json",
						    std::string(gate_argument)}));
		CHECK(entry["timeout"] == 7);
		CHECK(entry["env"] == Spec::array({"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}));
		CHECK(spec["hooks"]["poststart"][0]["path"] == "/h/vmm-cgroup-poststart");
		CHECK(spec["hooks"]["poststop"][0]["path"] == "/h/vmm-cgroup-poststop");
	}

	TEST_CASE("add_hooks: idempotent, and after the hooks already there")
	{
		Spec spec = parse_spec(
			R"({"hooks":{"prestart":[{"path":"/p"}],"poststart":[{"path":"/other"}]}})");
		CHECK(add_hooks(spec, settings()));
		std::string once = spec.dump();
		CHECK_FALSE(add_hooks(spec, settings()));
		CHECK(spec.dump() == once);
		CHECK(spec["hooks"]["prestart"] == Spec::parse(R"([{"path":"/p"}])"));
		REQUIRE(spec["hooks"]["poststart"].size() == 2);
		CHECK(spec["hooks"]["poststart"][0]["path"] == "/other");
		CHECK(spec["hooks"]["poststart"][1]["path"] == "/h/vmm-cgroup-poststart");
		CHECK(spec["hooks"]["createRuntime"].size() == 1);
	}

	TEST_CASE("add_hooks: an entry of ours is replaced in place")
	{
		Spec spec = parse_spec(
			R"({"hooks":{"poststop":[{"path":"/h/vmm-cgroup-poststop","args":["old"]},)"
			R"({"path":"/later"}]}})");
		CHECK(add_hooks(spec, settings()));
		REQUIRE(spec["hooks"]["poststop"].size() == 2);
		CHECK(spec["hooks"]["poststop"][0]["args"][1] == "--config");
		CHECK(spec["hooks"]["poststop"][1]["path"] == "/later");
	}

	TEST_CASE("add_hooks: no configuration, the gate argument alone")
	{
		HookSettings s = settings();
		s.config.reset();
		Spec spec = parse_spec(R"({"annotations":{"a":"b"}})");
		CHECK(add_hooks(spec, s));
		for (const char *stage : {"createRuntime", "poststart", "poststop"}) {
			CAPTURE(stage);
			const Spec &args = spec["hooks"][stage][0]["args"];
			REQUIRE(args.size() == 2);
			CHECK(args[1] == std::string(gate_argument));
		}
		CHECK(spec["hooks"]["poststart"][0]["args"] ==
		      Spec::array({"/h/vmm-cgroup-poststart", "--gate=runtime"}));
		CHECK(spec["annotations"] == Spec::parse(R"({"a":"b"})"));
	}

	TEST_CASE("add_hooks: the container's enable annotation is neither set nor changed")
	{
		Spec off = parse_spec(R"({"annotations":{"io.vmm-cgroup-hooks.enable":"false"}})");
		CHECK(add_hooks(off, settings()));
		CHECK(off["annotations"] == Spec::parse(R"({"io.vmm-cgroup-hooks.enable":"false"})"));
		Spec none = parse_spec(R"({"process":{"args":["qemu"]}})");
		CHECK(add_hooks(none, settings()));
		CHECK_FALSE(none.contains("annotations"));
		// Only the hooks changed: a spec that has them already is left as it is.
		CHECK_FALSE(add_hooks(none, settings()));
	}

	TEST_CASE("add_hooks: an entry of an older wrapper (no gate argument) is brought up to date")
	{
		Spec spec =
			parse_spec(R"({"hooks":{"poststart":[{"path":"/h/vmm-cgroup-poststart","args":)"
				   R"(["/h/vmm-cgroup-poststart","--config","/etc/x.json"],"timeout":7}]}})");
		CHECK(add_hooks(spec, settings()));
		REQUIRE(spec["hooks"]["poststart"].size() == 1);
		CHECK(spec["hooks"]["poststart"][0]["args"].back() == std::string(gate_argument));
	}

	TEST_CASE("add_hooks: wrong types are refused")
	{
		for (const char *text : {R"({"hooks":[]})", R"({"hooks":{"poststart":{}}})",
					 R"({"hooks":{"createRuntime":"x"}})", R"({"annotations":[]})"}) {
			CAPTURE(text);
			Spec spec = parse_spec(text);
			CHECK_INPUT_ERROR(add_hooks(spec, settings()), "config.json: field '");
		}
		Spec null_hooks = parse_spec(R"({"hooks":null,"annotations":null})");
		CHECK(add_hooks(null_hooks, settings()));
		CHECK(null_hooks["hooks"]["poststop"].size() == 1);
		CHECK(null_hooks["annotations"].is_null());
	}

	TEST_CASE("parse_wrapper_config")
	{
		WrapperConfig defaults;
		defaults.hook_dir = "/usr/libexec/x";
		WrapperConfig none = parse_wrapper_config("{}", defaults);
		CHECK_FALSE(none.runtime);
		CHECK(none.hook_dir == "/usr/libexec/x");
		CHECK_FALSE(none.hook_config);
		CHECK(none.hook_timeout_s == 30);
		WrapperConfig all = parse_wrapper_config(
			R"({"runtime":"/usr/bin/crun","hook_dir":"/opt/h","hook_config":"/etc/h.json","hook_timeout_s":30})",
			defaults);
		CHECK(all.runtime == "/usr/bin/crun");
		CHECK(all.hook_dir == "/opt/h");
		CHECK(all.hook_config == "/etc/h.json");
		CHECK(all.hook_timeout_s == 30);
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"runtime":"runc"})", defaults),
				  "field 'runtime': must be a clean absolute");
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"hook_dir":"/a/../b"})", defaults),
				  "field 'hook_dir'");
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"hook_config":7})", defaults),
				  "field 'hook_config': must be a string");
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"hook_timeout_s":0})", defaults),
				  "field 'hook_timeout_s'");
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"hook_timeout_s":301})", defaults),
				  "field 'hook_timeout_s'");
		CHECK_INPUT_ERROR(parse_wrapper_config(R"({"runtme":"/x"})", defaults),
				  "field 'runtme': unknown");
		CHECK_INPUT_ERROR(parse_wrapper_config("nope", defaults), "runtime.json: not valid JSON");
	}

	TEST_CASE("wrapper_config_for: a broken runtime.json refuses create and run, and only them")
	{
		WrapperConfig defaults;
		defaults.hook_dir = "/usr/libexec/x";
		auto text = [](std::optional<std::string> t) { return [t] { return t; }; };
		auto unreadable = []() -> std::optional<std::string> {
			throw std::system_error(std::make_error_code(std::errc::permission_denied),
						"reading r.json");
		};
		LoadedConfig good =
			wrapper_config_for("kill", text(R"({"runtime":"/usr/bin/crun"})"), defaults);
		CHECK(good.config.runtime == "/usr/bin/crun");
		CHECK_FALSE(good.problem);
		LoadedConfig none = wrapper_config_for("create", text(std::nullopt), defaults);
		CHECK_FALSE(none.config.runtime);
		CHECK(none.config.hook_dir == "/usr/libexec/x");
		CHECK_FALSE(none.problem);
		for (std::string_view command : {"create", "run"}) {
			CAPTURE(command);
			CHECK_INPUT_ERROR(wrapper_config_for(command, text("nope"), defaults),
					  "runtime.json: not valid JSON");
			CHECK_THROWS_AS(wrapper_config_for(command, unreadable, defaults), std::system_error);
		}
		for (std::string_view command : {"kill", "delete", "state", "start", "update", ""}) {
			CAPTURE(command);
			LoadedConfig broken = wrapper_config_for(
				command, text(R"({"runtime":"/opt/x","hook_timeout_s":0})"), defaults);
			CHECK_FALSE(broken.config.runtime); // not half of the file: the defaults
			CHECK(broken.config.hook_dir == "/usr/libexec/x");
			REQUIRE(broken.problem);
			CHECK(broken.problem->find("hook_timeout_s") != std::string::npos);
			LoadedConfig denied = wrapper_config_for(command, unreadable, defaults);
			CHECK_FALSE(denied.config.runtime);
			REQUIRE(denied.problem);
			CHECK(denied.problem->find("reading r.json") != std::string::npos);
		}
	}

	TEST_CASE("kill_all_target: kill --all and its spellings")
	{
		CHECK(kill_all_of({"--all", "c1", "KILL"}) == "c1");
		CHECK(kill_all_of({"-a", "c1", "9"}) == "c1");
		CHECK(kill_all_of({"-all", "c1"}) == "c1");
		CHECK(kill_all_of({"--all=true", "c1"}) == "c1");
		CHECK(kill_all_of({"--all", "--", "c1", "KILL"}) == "c1");
		CHECK_FALSE(kill_all_of({"c1", "KILL"}));
		CHECK_FALSE(kill_all_of({"c1", "--all"})); // runc reads no option after the id
		CHECK_FALSE(kill_all_of({"--all=false", "c1"}));
		CHECK_FALSE(kill_all_of({"--all"}));
		CHECK_FALSE(kill_all_of({"--all", "--"}));
		CHECK_FALSE(kill_all_of({"--all", "--regex", "c.*"})); // crun: a pattern, not an id
		CHECK_FALSE(kill_all_of({"-r", "-a", "c.*"}));
		CHECK_FALSE(kill_all_of({}));
	}

	TEST_CASE("choose_runtime")
	{
		WrapperConfig config;
		std::vector<std::string> asked;
		auto only = [&](std::string present) {
			return [&asked, present](const std::string &path) {
				asked.push_back(path);
				return path == present;
			};
		};
		CHECK(choose_runtime(config, only("/usr/bin/runc")) == "/usr/bin/runc");
		CHECK(choose_runtime(config, only("/usr/sbin/runc")) == "/usr/sbin/runc");
		asked.clear();
		CHECK(choose_runtime(config, only("/usr/bin/crun")) == "/usr/bin/crun");
		CHECK(asked == default_runtimes());
		CHECK_INPUT_ERROR(choose_runtime(config, only("/nowhere")), "no runtime");
		config.runtime = "/opt/runc";
		CHECK(choose_runtime(config, only("/nowhere")) == "/opt/runc");
	}

	TEST_CASE("hook_settings")
	{
		WrapperConfig config;
		config.hook_dir = "/usr/local/libexec/vmm-cgroup-hooks";
		config.hook_config = "/etc/c.json";
		config.hook_timeout_s = 5;
		HookSettings s = hook_settings(config);
		CHECK(s.create_runtime == "/usr/local/libexec/vmm-cgroup-hooks/vmm-cgroup-create-runtime");
		CHECK(s.poststart == "/usr/local/libexec/vmm-cgroup-hooks/vmm-cgroup-poststart");
		CHECK(s.poststop == "/usr/local/libexec/vmm-cgroup-hooks/vmm-cgroup-poststop");
		CHECK(s.config == "/etc/c.json");
		CHECK(s.timeout_s == 5);
	}

	TEST_CASE("log_line: runc's formats")
	{
		CHECK(log_line("json", "vmm-cgroup-runtime: bad \"x\"", "2024-01-02T03:04:05Z") ==
		      "{\"level\":\"error\",\"msg\":\"vmm-cgroup-runtime: bad "
		      "\\\"x\\\"\",\"time\":\"2024-01-02T03:04:05Z\"}\n");
		CHECK(log_line("text", "m", "T") == "time=\"T\" level=error msg=\"m\"\n");
		CHECK(log_line("text", "m", "T", "warning") == "time=\"T\" level=warning msg=\"m\"\n");
		CHECK(log_line("json", "m", "T", "warning") == R"({"level":"warning","msg":"m","time":"T"})"
							       "\n");
	}

	TEST_CASE("spec file: read and replaced atomically, mode kept")
	{
		unit::TempDir dir;
		std::string path = dir.write("config.json", R"({"a":1})");
		REQUIRE(::chmod(path.c_str(), 0640) == 0);
		SpecFile file = read_spec_file(dir.path());
		CHECK(file.text == R"({"a":1})");
		replace_spec_file(file, R"({"a":2})");
		CHECK(read_spec_file(dir.path()).text == R"({"a":2})");
		struct stat st;
		REQUIRE(::stat(path.c_str(), &st) == 0);
		CHECK((st.st_mode & 07777) == 0640);
		std::vector<std::string> names;
		for (const auto &entry : std::filesystem::directory_iterator(dir.path()))
			names.push_back(entry.path().filename().string());
		CHECK(names == std::vector<std::string>{"config.json"});
	}

	TEST_CASE("spec file: refusals")
	{
		unit::TempDir dir;
		CHECK_INPUT_ERROR(read_spec_file(dir / "none"), "bundle");
		CHECK_INPUT_ERROR(read_spec_file(dir.path()), "config.json: missing");
		std::string target = dir.write("real.json", "{}");
		REQUIRE(::symlink(target.c_str(), (dir / "config.json").c_str()) == 0);
		CHECK_INPUT_ERROR(read_spec_file(dir.path()), "a symbolic link");
		REQUIRE(::unlink((dir / "config.json").c_str()) == 0);
		REQUIRE(::mkfifo((dir / "config.json").c_str(), 0600) == 0);
		CHECK_INPUT_ERROR(read_spec_file(dir.path()), "not a regular file"); // and did not block
		REQUIRE(::unlink((dir / "config.json").c_str()) == 0);
		dir.write("config.json", std::string(max_spec_size + 1, ' '));
		CHECK_INPUT_ERROR(read_spec_file(dir.path()), "larger than");
	}
}
