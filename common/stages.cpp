#include "stages.h"

#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "bundle.h"
#include "errors.h"
#include "hook.h"
#include "host.h"
#include "layout.h"
#include "placement.h"
#include "procfs.h"
#include "record.h"
#include "settler.h"
#include "text.h"

namespace vmmcg {

namespace {

using Annotations = std::map<std::string, std::string>;

// The annotations of the container: the state's (runtime-spec 1.0.2+) or, from older runtimes, config.json's.
const Annotations &annotations_of(const State &state, const BundleConfig &bundle)
{
	return state.annotations.empty() ? bundle.annotations : state.annotations;
}

// oci-hooks.d gates on the annotation already; a hook registered without that gate still acts only on
// containers that ask for it.
bool enabled(const Annotations &annotations)
{
	auto it = annotations.find(std::string(enable_annotation));
	bool on = it != annotations.end() && it->second == "true";
	if (!on)
		spdlog::info("{} is not \"true\": nothing to do", enable_annotation);
	return on;
}

void log_annotations(const std::vector<AnnotationOutcome> &outcomes)
{
	for (const auto &outcome : outcomes) {
		if (outcome.applied)
			spdlog::info("annotation {}={} applied", outcome.key, printable(outcome.value));
		else
			spdlog::warn("annotation {}={} refused: {}", printable(outcome.key),
				     printable(outcome.value), outcome.reason);
	}
}

ProcessRef container_process(const ProcFs &proc, const State &state)
{
	if (state.pid <= 0)
		throw InputError("state: field 'pid': missing or 0, needed at this stage");
	auto ref = proc.process(state.pid);
	if (!ref)
		throw InputError("state: field 'pid': " + std::to_string(state.pid) +
				 " is not a running process");
	return *ref;
}

// What the layout depends on, from the host and the configuration; the caller adds S when it knows it.
LayoutInput layout_input(const Config &config, const std::string &id)
{
	LayoutInput input;
	input.host = detect_host_mode();
	input.mode = config.mode;
	input.id = id;
	input.overhead_root = config.overhead_root;
	input.overhead_controllers = config.overhead_controllers;
	if (config.mode == Mode::split) // sandbox-only needs no mount: nothing is created or moved
		input.mounts = discover_mounts(input.host);
	return input;
}

// The cgroupsPath is where the runtime was asked to put the container; /proc says where it did. A mismatch
// is reported, not fatal: runtimes nest (crun's systemd sub-group) and relative paths depend on the runtime.
void cross_check(const CgroupsPath &asked, const ProcCgroups &sandbox)
{
	if (asked.kind != CgroupsPath::Kind::absolute)
		return;
	for (const auto &[key, path] : sandbox)
		if (path != asked.path && !path.starts_with(asked.path + "/"))
			spdlog::warn("cgroupsPath {} but the container is in {} ({})", printable(asked.path),
				     printable(path), key.empty() ? "cgroup2" : key);
}

// The record of a new container: where the runtime put it, and the layout of its cgroups.
Record plan(const State &state, const Config &config, const ProcessRef &container, const BundleConfig &bundle)
{
	LayoutInput input = layout_input(config, state.id);
	std::error_code ec;
	std::string membership = ProcFs().read(container.pid, "cgroup", ec);
	if (ec)
		throw std::system_error(ec, "reading /proc/" + std::to_string(container.pid) + "/cgroup");
	input.sandbox = parse_proc_cgroup(membership);
	cross_check(bundle.cgroups_path, input.sandbox);
	Record record;
	record.id = state.id;
	record.mode = config.mode;
	record.host = input.host;
	record.qmp_socket = config.qmp_socket;
	record.cgroups = compute_layout(input);
	return record;
}

} // namespace

int create_runtime(const State &state, Config config)
{
	ProcessRef container = container_process(ProcFs(), state);
	BundleConfig bundle = read_bundle_config(state.bundle);
	if (!enabled(annotations_of(state, bundle)))
		return exit_ok;
	log_annotations(apply_annotations(config, annotations_of(state, bundle)));

	Record record = plan(state, config, container, bundle);
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	std::size_t created = backend ? backend->provision(config.overhead_limits) : 0;
	try {
		write_record(config.record_dir, record);
	} catch (...) {
		// Nothing half done: without a record poststop could not find what to undo.
		if (backend)
			backend->rollback();
		throw;
	}
	// One line at info per stage: this runs for every container start, and syslog is shared.
	spdlog::info("{} mode on a {} host: {} cgroups created", to_string(config.mode),
		     to_string(record.host), created);
	return exit_ok;
}

namespace {

void log_settled(const SettleResult &result, const char *who)
{
	if (result.complete)
		spdlog::info("{}: VMM pid {} placed, {} vCPU threads (source: {})", who, result.vmm->pid,
			     result.vcpus.size(), result.vcpu_source);
	else if (result.container_gone)
		spdlog::warn("{}: the container's process exited before a VMM appeared", who);
	else if (result.vmm)
		spdlog::warn("{}: VMM pid {} placed with {} vCPU threads, not complete yet (threads still "
			     "changing, "
			     "or too young)",
			     who, result.vmm->pid, result.vcpus.size());
	else
		spdlog::warn("{}: no VMM found", who);
}

// Stores the placement; once vCPU threads are in place, lifts what still binds the overhead (v2: S's
// cpu.max; backend.h).
void store_placement(Record &record, Backend &backend, const SettleResult &result)
{
	record.vmm = result.vmm;
	record.vcpus = result.vcpus;
	record.vcpu_source = result.vmm ? result.vcpu_source : "";
	if (result.vmm && !result.vcpus.empty())
		backend.relax();
}

// The settler's work, in the detached process: places until complete or settle_timeout_ms, then, once
// poststart has written its record (the go fd), updates the record if poststop has not removed it.
int settle_detached(const Config &config, const Record &base, const ProcessRef &container, int go_fd)
{
	Record record = base;
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.settle_timeout_ms);
	SettleResult settled =
		PlacementLoop(*backend, ProcFs(), PlacementOptions::from(config), container).run(until);
	log_settled(settled, "settler");
	wait_for_go(go_fd);
	auto current = read_record(config.record_dir, base.id);
	if (!current)
		return exit_ok;
	std::unique_ptr<Backend> current_backend = make_backend(current->cgroups);
	store_placement(*current, *current_backend, settled);
	current->settler.reset();
	write_record(config.record_dir, *current);
	return exit_ok;
}

// Not there yet (runc runs poststart before exec; a VMM creates its vCPUs late): hand over to the settler.
int hand_over(const Config &config, Record &record, Backend &backend, const SettleResult &result,
	      const ProcessRef &container)
{
	Record base = record;
	auto settler = spawn_settler(
		ProcFs(), [&](int go_fd) { return settle_detached(config, base, container, go_fd); });
	if (!settler)
		throw HostError("could not start the settler process");
	record.settler = settler->process();
	store_placement(record, backend, result);
	write_record(config.record_dir, record);
	settler->let_go();
	spdlog::info("VMM or vCPUs not settled within {} ms: settler pid {} continues for up to {} ms",
		     config.poststart_budget_ms, settler->process().pid, config.settle_timeout_ms);
	return exit_ok;
}

std::optional<Record> record_for_poststart(const State &state, const Config &config)
{
	auto record = read_record(config.record_dir, state.id);
	if (!record && enabled(annotations_of(state, read_bundle_config(state.bundle))))
		throw HostError("no record " + record_path(config.record_dir, state.id) +
				": createRuntime did not run for this container");
	return record;
}

} // namespace

int poststart(const State &state, Config config)
{
	std::optional<Record> record = record_for_poststart(state, config);
	if (!record)
		return exit_ok;
	std::unique_ptr<Backend> backend = make_backend(record->cgroups);
	if (!backend) {
		spdlog::info("sandbox-only mode: the VMM stays in the container's cgroup");
		return exit_ok;
	}
	config.qmp_socket = record->qmp_socket;
	ProcessRef container = container_process(ProcFs(), state);

	auto deadline =
		std::chrono::steady_clock::now() + std::chrono::milliseconds(config.poststart_budget_ms);
	SettleResult result =
		PlacementLoop(*backend, ProcFs(), PlacementOptions::from(config), container).run(deadline);
	if (!result.complete && !result.container_gone)
		return hand_over(config, *record, *backend, result, container);
	log_settled(result, "poststart");
	store_placement(*record, *backend, result);
	write_record(config.record_dir, *record);
	return exit_ok;
}

namespace {

// A settler still running would place threads while poststop removes cgroups: end it first.
void stop_settler(const std::optional<ProcessRef> &settler)
{
	ProcFs proc;
	if (!settler || !proc.alive(*settler))
		return;
	::kill(settler->pid, SIGKILL);
	for (int i = 0; i < 200 && proc.alive(*settler); ++i)
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	spdlog::info("stopped settler pid {}", settler->pid);
}

// No record (createRuntime never ran, or a second poststop): what the configuration would have made.
// Only v1 overhead cgroups can be found without the container's cgroup.
CgroupLayout layout_from_config(const State &state, const Config &config)
{
	try {
		return compute_layout(layout_input(config, state.id));
	} catch (const InputError &e) {
		spdlog::debug("nothing to clean: {}", e.what());
		return {};
	}
}

} // namespace

int poststop(const State &state, const Config &config)
{
	std::optional<Record> record;
	bool record_broken = false;
	try {
		record = read_record(config.record_dir, state.id);
	} catch (const HostError &e) {
		spdlog::error("{}: cleaning what the configuration implies", e.what());
		record_broken = true;
	}
	if (record)
		stop_settler(record->settler);
	CgroupLayout layout = record ? record->cgroups : layout_from_config(state, config);
	std::unique_ptr<Backend> backend = make_backend(layout);
	std::size_t failures = backend ? backend->teardown() : 0;
	if (std::error_code ec = remove_record(config.record_dir, state.id)) {
		spdlog::error("removing {}: {}", record_path(config.record_dir, state.id), ec.message());
		++failures;
	}
	if (failures > 0 || record_broken)
		return exit_failure;
	spdlog::info(record ? "cleaned up" : "no record: nothing left to clean");
	return exit_ok;
}

} // namespace vmmcg
