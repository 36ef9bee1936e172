#include "hook.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "bundle.h"
#include "config.h"
#include "discovery.h"
#include "errors.h"
#include "host.h"
#include "io.h"
#include "layout.h"
#include "log.h"
#include "placement.h"
#include "provision.h"
#include "record.h"
#include "settler.h"
#include "state.h"

#ifndef VMMCG_DEFAULT_CONFIG
#define VMMCG_DEFAULT_CONFIG "/etc/vmm-cgroup-hooks/config.json"
#endif

namespace vmmcg {

namespace {

const char *stage_name(Stage stage)
{
	switch (stage) {
	case Stage::create_runtime:
		return "createRuntime";
	case Stage::poststart:
		return "poststart";
	case Stage::poststop:
		return "poststop";
	}
	return "?";
}

struct Arguments {
	std::optional<std::string> config;
};

Arguments parse_arguments(int argc, char **argv)
{
	Arguments args;
	for (int i = 1; i < argc; ++i) {
		std::string_view arg = argv[i];
		if (arg == "--config" && i + 1 < argc)
			args.config = argv[++i];
		else if (arg.starts_with("--config="))
			args.config = std::string(arg.substr(9));
		else
			throw InputError("argument '" + std::string(arg) +
					 "': unknown (usage: [--config PATH])");
	}
	return args;
}

// The annotations of the container: the state's (runtime-spec 1.0.2+) or, from older runtimes, config.json's.
const std::map<std::string, std::string> &annotations_of(const State &state, const BundleConfig &bundle)
{
	return state.annotations.empty() ? bundle.annotations : state.annotations;
}

bool enabled(const std::map<std::string, std::string> &annotations)
{
	auto it = annotations.find(std::string(enable_annotation));
	return it != annotations.end() && it->second == "true";
}

void log_annotations(const std::vector<AnnotationOutcome> &outcomes)
{
	for (const auto &outcome : outcomes) {
		if (outcome.applied)
			spdlog::info("annotation {}={} applied", outcome.key, outcome.value);
		else
			spdlog::warn("annotation {}={} refused: {}", outcome.key, outcome.value,
				     outcome.reason);
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
void cross_check(const CgroupsPath &asked, const Layout &layout)
{
	if (asked.kind != CgroupsPath::Kind::absolute)
		return;
	for (const auto &target : layout.targets)
		if (target.sandbox != asked.path && !target.sandbox.starts_with(asked.path + "/"))
			spdlog::warn("cgroupsPath {} but the container is in {} ({})", asked.path,
				     target.sandbox, target.controllers);
}

int create_runtime(const State &state, Config &config)
{
	ProcFs proc;
	ProcessRef container = container_process(proc, state);
	BundleConfig bundle = read_bundle_config(state.bundle);
	const auto &annotations = annotations_of(state, bundle);
	// oci-hooks.d gates on the annotation already; a hook registered without that gate still acts only on
	// containers that ask for it.
	if (!enabled(annotations)) {
		spdlog::info("{} is not \"true\": nothing to do", enable_annotation);
		return exit_ok;
	}
	log_annotations(apply_annotations(config, annotations));

	LayoutInput input = layout_input(config, state.id);
	std::error_code ec;
	std::string membership = proc.process_cgroup(container.pid, ec);
	if (ec)
		throw std::system_error(ec, "reading /proc/" + std::to_string(container.pid) + "/cgroup");
	input.sandbox = parse_proc_cgroup(membership);

	Record record;
	record.id = state.id;
	record.qmp_socket = config.qmp_socket;
	record.layout = compute_layout(input);
	cross_check(bundle.cgroups_path, record.layout);

	Provisioned made = provision(record.layout, config.overhead_limits);
	record.adopted = made.adopted;
	record.enabled = made.enabled;
	record.saved = made.saved;
	try {
		write_record(config.record_dir, record);
	} catch (...) {
		// Nothing half done: without a record poststop could not find what to undo.
		rollback(record.layout, made);
		throw;
	}
	// One line at info per stage: this runs for every container start, and syslog is shared.
	for (const auto &path : made.created)
		spdlog::debug("created {}", path);
	for (const auto &path : made.adopted)
		spdlog::warn("adopted existing {}", path);
	spdlog::info("{} mode on a {} host: {} hierarchies, {} cgroups created", to_string(config.mode),
		     to_string(input.host), record.layout.targets.size(), made.created.size());
	return exit_ok;
}

void log_settled(const SettleResult &result, const char *who)
{
	if (result.complete)
		spdlog::info("{}: VMM pid {} placed, {} vCPU threads (source: {})", who, result.vmm->pid,
			     result.vcpus.size(), result.vcpu_source);
	else if (result.container_gone)
		spdlog::warn("{}: the container's process exited before a VMM appeared", who);
	else if (result.vmm)
		spdlog::warn("{}: VMM pid {} placed with {} vCPU threads, not complete yet (threads still "
			     "changing, or too young)",
			     who, result.vmm->pid, result.vcpus.size());
	else
		spdlog::warn("{}: no VMM found", who);
}

// Stores the placement; once vCPU threads are in place, lifts S's own CPU limit on v2 (provision.h).
void store_placement(Record &record, const SettleResult &result)
{
	record.vmm = result.vmm;
	record.vcpus = result.vcpus;
	record.vcpu_source = result.vmm ? result.vcpu_source : "";
	if (result.vmm && !result.vcpus.empty() && !record.relaxed) {
		relax_sandbox(record.layout);
		record.relaxed = true;
	}
}

int poststart(const State &state, Config config)
{
	ProcFs proc;
	auto record = read_record(config.record_dir, state.id);
	if (!record) {
		if (!enabled(annotations_of(state, read_bundle_config(state.bundle)))) {
			spdlog::info("{} is not \"true\": nothing to do", enable_annotation);
			return exit_ok;
		}
		throw std::runtime_error("no record " + record_path(config.record_dir, state.id) +
					 ": createRuntime did not run for this container");
	}
	if (record->layout.mode == Mode::sandbox_only) {
		spdlog::info("sandbox-only mode: the VMM stays in the container's cgroup");
		return exit_ok;
	}
	config.qmp_socket = record->qmp_socket;
	auto container = proc.process(state.pid > 0 ? state.pid : -1);
	if (state.pid <= 0 || !container)
		throw InputError("state: field 'pid': " + std::to_string(state.pid) +
				 " is not a running process");

	auto deadline =
		std::chrono::steady_clock::now() + std::chrono::milliseconds(config.poststart_budget_ms);
	SettleResult result = settle(record->layout, proc, config, *container, deadline);
	if (result.complete || result.container_gone) {
		log_settled(result, "poststart");
		store_placement(*record, result);
		write_record(config.record_dir, *record);
		return exit_ok;
	}

	// Not there yet (runc runs poststart before exec; a VMM creates its vCPUs late): hand over.
	Record base = *record;
	auto settler = spawn_settler(proc, [&, base](int go_fd) mutable {
		auto until = std::chrono::steady_clock::now() +
			     std::chrono::milliseconds(config.settle_timeout_ms);
		SettleResult settled = settle(base.layout, proc, config, *container, until);
		log_settled(settled, "settler");
		wait_for_go(go_fd);
		// poststop may have run meanwhile: only update a record that is still there.
		auto current = read_record(config.record_dir, base.id);
		if (!current)
			return exit_ok;
		store_placement(*current, settled);
		current->settler.reset();
		write_record(config.record_dir, *current);
		return exit_ok;
	});
	if (!settler)
		throw std::runtime_error("could not start the settler process");
	record->settler = settler->process();
	store_placement(*record, result);
	write_record(config.record_dir, *record);
	settler->release();
	spdlog::info("VMM or vCPUs not settled within {} ms: settler pid {} continues for up to {} ms",
		     config.poststart_budget_ms, settler->process().pid, config.settle_timeout_ms);
	return exit_ok;
}

// A settler still running would place threads while poststop removes cgroups: end it first.
void stop_settler(const ProcFs &proc, const std::optional<ProcessRef> &settler)
{
	if (!settler || !proc.alive(*settler))
		return;
	::kill(settler->pid, SIGKILL);
	for (int i = 0; i < 200 && proc.alive(*settler); ++i)
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	spdlog::info("stopped settler pid {}", settler->pid);
}

int poststop(const State &state, const Config &config)
{
	ProcFs proc;
	std::optional<Record> record;
	bool record_broken = false;
	try {
		record = read_record(config.record_dir, state.id);
	} catch (const InputError &e) {
		spdlog::error("{}: cleaning what the configuration implies", e.what());
		record_broken = true;
	}
	Layout layout;
	if (record) {
		stop_settler(proc, record->settler);
		layout = record->layout;
	} else {
		// No record (createRuntime never ran, or a second poststop): what the configuration would
		// have made. Only v1 overhead cgroups can be found without the container's cgroup.
		try {
			layout = compute_layout(layout_input(config, state.id));
		} catch (const InputError &e) {
			spdlog::debug("nothing to clean: {}", e.what());
		}
	}
	std::size_t failures = teardown(layout);
	if (record)
		failures += restore_sandbox(layout, record->enabled, record->saved);
	if (std::error_code ec = remove_record(config.record_dir, state.id)) {
		spdlog::error("removing {}: {}", record_path(config.record_dir, state.id), ec.message());
		++failures;
	}
	if (failures > 0 || record_broken)
		return exit_failure;
	spdlog::info(record ? "cleaned up" : "no record: nothing left to clean");
	return exit_ok;
}

} // namespace

int run_hook(Stage stage, int argc, char **argv)
{
	setup_logging(stage_name(stage), {});
	try {
		Arguments args = parse_arguments(argc, argv);
		State state =
			parse_state(read_fd_limited(STDIN_FILENO, max_state_size, "state (standard input)"));
		set_log_container(state.id);
		Config config = load_config(args.config, VMMCG_DEFAULT_CONFIG);
		setup_logging(stage_name(stage), {config.log_level, config.log_syslog, config.log_stderr});

		switch (stage) {
		case Stage::create_runtime:
			return create_runtime(state, config);
		case Stage::poststart:
			return poststart(state, config);
		case Stage::poststop:
			return poststop(state, config);
		}
	} catch (const InputError &e) {
		spdlog::error("{}", e.what());
		return exit_bad_input;
	} catch (const std::exception &e) {
		spdlog::error("{}", e.what());
		return exit_failure;
	}
	return exit_failure;
}

} // namespace vmmcg
