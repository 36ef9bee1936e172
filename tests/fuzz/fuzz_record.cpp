// fuzz_record: vmmcg::record_from_json (common/record.h) on arbitrary bytes, as poststart and poststop read a
// record back. InputError is the documented refusal (record_from_json turns nlohmann's exceptions into it);
// anything else is a finding. An accepted record must survive record_to_json and record_from_json again
// unchanged: a hook must always be able to read back what it wrote.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "errors.h"
#include "fuzz_check.h"
#include "paths.h"
#include "record.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using vmmcg::fuzz::check;
	std::string text(vmmcg::fuzz::as_text(data, size));
	if (text.size() > (4 << 20))
		return -1; // read_record's limit

	vmmcg::Record record;
	try {
		record = vmmcg::record_from_json(text);
	} catch (const vmmcg::InputError &) {
		return 0;
	}

	if (const auto *v1 = std::get_if<vmmcg::cgroup_v1::Layout>(&record.cgroups))
		for (const auto &h : v1->hierarchies) {
			check(vmmcg::is_clean_absolute(h.overhead) && h.overhead != "/",
			      "an overhead cgroup is a clean absolute path other than /", h.overhead);
			for (const auto &dir : h.shared)
				check(vmmcg::is_clean_absolute(dir) && dir != "/",
				      "a shared cgroup is a clean absolute path other than /", dir);
		}
	if (const auto *v2 = std::get_if<vmmcg::cgroup_v2::Layout>(&record.cgroups)) {
		check(vmmcg::is_clean_absolute(v2->sandbox) && v2->sandbox != "/",
		      "S is a clean absolute path other than /", v2->sandbox);
		for (const auto &name : v2->enabled)
			check(name == "cpu" || name == "cpuset", "enabled controllers are cpu or cpuset",
			      name);
		for (const auto &[file, value] : v2->saved)
			check(file == "cpu.max", "the only saved file is cpu.max", file);
	}
	if (record.qmp_socket)
		check(vmmcg::is_clean_absolute(*record.qmp_socket), "qmp_socket is a clean absolute path",
		      *record.qmp_socket);

	std::string once = vmmcg::record_to_json(record);
	vmmcg::Record again;
	try {
		again = vmmcg::record_from_json(once);
	} catch (const vmmcg::InputError &e) {
		check(false, "a record written by record_to_json reads back", e.what());
	}
	std::string twice = vmmcg::record_to_json(again);
	check(once == twice, "record_to_json(record_from_json(record_to_json(r))) == record_to_json(r)",
	      twice);
	return 0;
}
