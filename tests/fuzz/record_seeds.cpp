// fuzz-record-seeds DIR: writes records made by vmmcg::record_to_json, for every mode and host mode, into DIR
// (the seed corpus of fuzz_record). Regenerate after a change to the record format:
//   ninja -C BUILD fuzz-record-seeds && BUILD/tests/fuzz/fuzz-record-seeds tests/fuzz/corpus/fuzz_record
#include <cstdio>
#include <fstream>
#include <string>
#include <variant>

#include "layout.h"
#include "record.h"

namespace {

vmmcg::Mounts v1_mounts()
{
	vmmcg::Mounts mounts;
	for (const char *name : {"cpu", "cpuacct"})
		mounts.v1[name] = "/sys/fs/cgroup/cpu,cpuacct";
	for (const char *name : {"cpuset", "memory", "pids", "devices", "freezer", "blkio"})
		mounts.v1[name] = std::string("/sys/fs/cgroup/") + name;
	return mounts;
}

vmmcg::ProcCgroups v1_sandbox(const std::string &s)
{
	vmmcg::ProcCgroups out;
	for (const char *name : {"cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio"})
		out[name] = s;
	out["name=systemd"] = s;
	return out;
}

vmmcg::Record make(const std::string &id, vmmcg::HostMode host, vmmcg::Mode mode)
{
	const std::string s = "/machine.slice/libpod-" + id + ".scope";
	vmmcg::LayoutInput input;
	input.host = host;
	input.mode = mode;
	input.instance = vmmcg::instance_name(id, "/run/bundles/" + id);
	input.overhead_root = "/vmm_overhead";
	input.overhead_controllers = {"cpu", "cpuacct", "cpuset"};
	if (host == vmmcg::HostMode::v2) {
		input.mounts.unified = "/sys/fs/cgroup";
		input.sandbox[""] = s;
	} else {
		input.mounts = v1_mounts();
		input.sandbox = v1_sandbox(s);
		if (host == vmmcg::HostMode::hybrid) {
			input.mounts.unified = "/sys/fs/cgroup/unified";
			input.sandbox[""] = s;
		}
	}
	vmmcg::Record record;
	record.id = id;
	record.name = input.instance;
	record.bundle = "/run/bundles/" + id;
	record.container = vmmcg::ProcessRef{4000, 366000};
	record.host = host;
	record.mode = mode;
	record.cgroups = vmmcg::compute_layout(input);
	return record;
}

bool write(const std::string &dir, const std::string &name, const vmmcg::Record &record)
{
	std::ofstream out(dir + "/" + name);
	out << vmmcg::record_to_json(record);
	return static_cast<bool>(out);
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const std::string dir = argv[1];
	bool ok = true;

	// createRuntime's record: cgroups created, nothing placed yet.
	ok &= write(dir, "v1-created.json", make("a1b2c3", vmmcg::HostMode::v1, vmmcg::Mode::split));

	// poststart's record on a hybrid host: VMM and vCPUs placed.
	vmmcg::Record hybrid = make("ctr-hybrid_1.0", vmmcg::HostMode::hybrid, vmmcg::Mode::split);
	hybrid.vmm = vmmcg::ProcessRef{4265, 366655};
	hybrid.vcpus = {4270, 4271, 4272, 4273};
	hybrid.vcpu_source = "thread-names";
	ok &= write(dir, "hybrid-placed.json", hybrid);

	// The settler still running on a v1 host.
	vmmcg::Record settling = make("settling", vmmcg::HostMode::v1, vmmcg::Mode::split);
	settling.settler = vmmcg::ProcessRef{5001, 367000};
	ok &= write(dir, "v1-settler.json", settling);

	// v2: controllers enabled in S, cpu.max saved and lifted, vCPUs found over QMP.
	vmmcg::Record v2 = make("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				vmmcg::HostMode::v2, vmmcg::Mode::split);
	auto &v2_cgroups = std::get<vmmcg::cgroup_v2::Layout>(v2.cgroups);
	v2_cgroups.enabled = {"cpu", "cpuset"};
	v2_cgroups.saved = {{"cpu.max", "200000 100000"}};
	v2_cgroups.relaxed = true;
	v2.qmp_socket = "/run/qmp.sock";
	v2.vmm = vmmcg::ProcessRef{812, 1234567890123};
	v2.vcpus = {815, 816};
	v2.vcpu_source = "qmp";
	ok &= write(dir, "v2-relaxed-qmp.json", v2);

	// v2 before placement: nothing relaxed, nothing saved yet.
	vmmcg::Record v2_created = make("v2ctr", vmmcg::HostMode::v2, vmmcg::Mode::split);
	auto &created = std::get<vmmcg::cgroup_v2::Layout>(v2_created.cgroups);
	created.enabled = {"cpu"};
	created.saved = {{"cpu.max", "max 100000"}};
	ok &= write(dir, "v2-created.json", v2_created);

	// sandbox-only: no targets.
	ok &= write(dir, "sandbox-only.json",
		    make("sbonly", vmmcg::HostMode::hybrid, vmmcg::Mode::sandbox_only));
	return ok ? 0 : 1;
}
