#include "stages.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "backend.h"
#include "cleanup.h"
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

// Whether this container asked for the split, and whether that counts. The runtime wrapper's hooks carry
// --gate=runtime: the node owner's runtime handler asked. An annotation is the container author's, so it
// counts only where the configuration says so (opt_in "annotation": podman, single-tenant CRI-O).
bool enabled(const StageContext &context, const Annotations &annotations)
{
	if (context.runtime_gate)
		return true;
	auto it = annotations.find(std::string(enable_annotation));
	bool asked = it != annotations.end() && it->second == "true";
	if (asked && context.config.opt_in == OptIn::annotation)
		return true;
	if (asked)
		spdlog::warn("{}=true ignored: only containers of the runtime handler are split here (opt_in "
			     "\"runtime\")",
			     enable_annotation);
	else
		spdlog::info("{} is not \"true\": nothing to do", enable_annotation);
	return false;
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

ProcessRef container_process(const State &state)
{
	if (state.pid <= 0)
		throw InputError("state: field 'pid': missing or 0, needed at this stage");
	auto ref = ProcFs().process(state.pid);
	if (!ref)
		throw InputError("state: field 'pid': " + std::to_string(state.pid) +
				 " is not a running process");
	return *ref;
}

std::string instance_of(const State &state)
{
	return instance_name(state.id, state.bundle);
}

// What the layout depends on, from the host and the configuration; the caller adds S.
LayoutInput layout_input(const StageContext &context)
{
	const Config &config = context.config;
	LayoutInput input;
	input.host = detect_host_mode();
	input.mode = config.mode;
	input.instance = instance_of(context.state);
	input.overhead_parent = config.overhead_parent;
	input.overhead_root = config.overhead_root;
	input.overhead_controllers = config.overhead_controllers;
	if (config.mode == Mode::split) // sandbox-only needs no mount: nothing is created or moved
		input.mounts = discover_mounts(input.host);
	return input;
}

// The keys of /proc/<pid>/cgroup the layout acts in: the overhead hierarchies (v1) or cgroup2.
std::vector<std::string> keys_of(const CgroupLayout &layout)
{
	std::vector<std::string> keys;
	if (const auto *v1 = std::get_if<cgroup_v1::Layout>(&layout))
		for (const auto &h : v1->hierarchies)
			keys.push_back(h.proc_key);
	if (std::holds_alternative<cgroup_v2::Layout>(layout))
		keys.emplace_back();
	return keys;
}

// An absolute cgroupsPath says where the runtime was asked to put the container; /proc says where the
// state's pid is. Where they disagree in a hierarchy the hooks act in, the pid is not this container's (or
// the runtime did something else): refused. Runtimes nest below the path (crun's systemd sub-group);
// relative and systemd paths depend on the runtime and are not compared.
void cross_check(const CgroupsPath &asked, const ProcCgroups &sandbox, const CgroupLayout &layout)
{
	if (asked.kind != CgroupsPath::Kind::absolute)
		return;
	for (const auto &key : keys_of(layout)) {
		auto it = sandbox.find(key);
		if (it == sandbox.end())
			continue; // compute_layout refused that already
		const std::string &path = it->second;
		if (path != asked.path && !path.starts_with(asked.path + "/"))
			throw InputError("state: field 'pid': the process is in " + printable(path) + " (" +
					 (key.empty() ? "cgroup2" : key) +
					 "), not in config.json's linux.cgroupsPath " +
					 printable(asked.path));
	}
}

// The record of a new container: where the runtime put it, and the layout of its cgroups.
Record plan(const StageContext &context, const ProcessRef &container, const BundleConfig &bundle)
{
	LayoutInput input = layout_input(context);
	std::error_code ec;
	std::string membership = ProcFs().read(container.pid, "cgroup", ec);
	if (ec)
		throw std::system_error(ec, "reading /proc/" + std::to_string(container.pid) + "/cgroup");
	input.sandbox = parse_proc_cgroup(membership);
	Record record;
	record.id = context.state.id;
	record.name = input.instance;
	record.bundle = context.state.bundle;
	record.phase = Record::Phase::creating;
	record.container = container;
	record.mode = context.config.mode;
	record.host = input.host;
	record.qmp_socket = context.config.qmp_socket;
	record.cgroups = compute_layout(input);
	cross_check(bundle.cgroups_path, input.sandbox, record.cgroups);
	if (bundle.shared_pid && std::holds_alternative<cgroup_v2::Layout>(record.cgroups)) {
		// runc before 1.2 and crun 1.8 kill such a container by reading cgroup.procs of every child
		// cgroup, which a threaded cgroup refuses (opencontainers/runc#3821): it could not be
		// stopped.
		spdlog::warn(
			"the container has no pid namespace of its own (none, or one joined by path): on "
			"cgroup v2 it is not split (its runtime could not kill it over threaded cgroups)");
		record.mode = Mode::sandbox_only;
		record.cgroups = {};
	}
	return record;
}

// The intent, recorded before the first mkdir. An instance of the same name (same id, same bundle) whose
// container is still alive is refused; one whose container is gone was never cleaned (an engine killed
// before poststop): it is cleaned now, and this one takes its place.
void record_intent(const Config &config, Record &intent)
{
	if (create_record(config.record_dir, intent))
		return;
	std::optional<Record> old = read_record(config.record_dir, intent.name, intent.id);
	if (old && old->container && ProcFs().alive(*old->container))
		throw HostError(record_path(config.record_dir, intent.name) +
				": a container of this id and bundle is "
				"running (pid " +
				std::to_string(old->container->pid) + "): refusing a second one");
	if (old) {
		spdlog::warn("cleaning a stale record of this id and bundle, whose container pid {} is gone",
			     old->container ? old->container->pid : 0);
		// S may be the new container's by now (the same path, made anew by the runtime): what the old
		// one saved of its S (its CPU limit) is not written into it.
		if (auto *v2 = std::get_if<cgroup_v2::Layout>(&old->cgroups)) {
			v2->saved.clear();
			v2->enabled.clear();
		}
		if (clean_up(config.record_dir, *old).failures > 0)
			throw HostError("the stale cgroups of this id and bundle could not all be removed");
	}
	if (!create_record(config.record_dir, intent))
		throw HostError(record_path(config.record_dir, intent.name) +
				": written by another hook meanwhile");
}

// Every thread of the VMM that is not a proven vCPU (its I/O threads, and any thread the layout does not
// recognise) goes to the overhead side, which is outside the container's own quota: its cap is what keeps
// the container within its limit (security.md). Without one, only the pod's cgroup bounds it (v1, O beside
// S), or nothing (overhead_root, or v2 where S's cpu.max is lifted): allowed, for a node owner who sizes
// Pod Overhead, but said once per container.
void warn_if_overhead_uncapped(const Config &config, const Record &record)
{
	if (record.mode == Mode::split && OverheadPolicy::from(config).uncapped())
		spdlog::warn(
			"the overhead side (every thread of the VMM that is not a proven vCPU) has no CPU "
			"limit of its own: overhead_cap_percent 0 without overhead_limits.cpu_quota_us, or "
			"cpu_quota_us -1");
}

} // namespace

int create_runtime(StageContext context)
{
	ProcessRef container = container_process(context.state);
	BundleConfig bundle = read_bundle_config(context.state.bundle);
	if (!enabled(context, annotations_of(context.state, bundle)))
		return exit_ok;
	log_annotations(apply_annotations(context.config, annotations_of(context.state, bundle)));

	Record record = plan(context, container, bundle);
	record_intent(context.config, record);
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	try {
		std::size_t created = backend ? backend->provision(OverheadPolicy::from(context.config)) : 0;
		record.phase = Record::Phase::created;
		write_record(context.config.record_dir, record);
		// One line at info per stage: this runs for every container start, and syslog is shared.
		spdlog::info("{} mode on a {} host: {} cgroups created", to_string(record.mode),
			     to_string(record.host), created);
		warn_if_overhead_uncapped(context.config, record);
	} catch (...) {
		// Nothing half done: provision() undid what it made; the record goes too.
		if (backend && record.phase == Record::Phase::created)
			backend->rollback();
		remove_record(context.config.record_dir, record.name);
		throw;
	}
	return exit_ok;
}

namespace {

// Hands the VMM over to a detached settler and watcher (watcher.h): still placing when the placement is not
// complete (runc runs poststart before exec; a VMM creates its vCPUs late), or only watching when it is.
// Once the settler is started, it does not return: the hook exits with exit_ok.
int hand_over(const StageContext &context, Record &record, Backend &backend, const SettleResult &result,
	      const ProcessRef &container)
{
	const Config &config = context.config;
	std::string why;
	auto settler = spawn_settler(ProcFs(), config,
				     {context.config_path, record.name, record.id, container}, why);
	if (!settler) {
		spdlog::warn("no settler could be started ({}): what is placed stays, the rest stays in the "
			     "container's cgroup",
			     why);
		store_placement(record, backend, result);
		write_record(config.record_dir, record);
		return exit_ok;
	}
	(result.complete ? record.watcher : record.settler) = settler->process();
	store_placement(record, backend, result);
	write_record(config.record_dir, record);
	settler->let_go();
	if (result.complete)
		log_settled(result, "poststart");
	else
		spdlog::info(
			"VMM or vCPUs not settled within {} ms: settler pid {} continues for up to {} ms",
			config.poststart_budget_ms, settler->process().pid, config.settle_timeout_ms);
	// Ended here, its objects left undestroyed: nothing is left to do (the record is written, and the log
	// writes each line as it comes, log.h), and freeing what poststart parsed and built only costs time.
	std::_Exit(exit_ok);
}

// A settler is worth its cost only for a container that may still become a VMM: its process is one
// already (vCPUs come late), the program config.json names for it is a VMM, or it is a launcher whose
// arguments name a VMM (`sh -c "exec qemu-system-x86_64 ..."`). A sidecar's `sh -c "sleep 1d"` gets none.
bool may_become_vmm(const Config &config, const SettleResult &result, const BundleConfig &bundle)
{
	if (result.vmm)
		return true;
	std::string_view program = bundle.program;
	std::string_view base = program.substr(program.rfind('/') + 1);
	if (matches_vmm_name(config.vmm_names, base, ""))
		return true;
	return matches_vmm_name(config.launcher_names, base, "") && names_vmm(config.vmm_names, bundle.args);
}

std::optional<Record> record_for_poststart(const StageContext &context, const BundleConfig &bundle)
{
	const State &state = context.state;
	auto record = read_record(context.config.record_dir, instance_of(state), state.id);
	if (!record && enabled(context, annotations_of(state, bundle)))
		throw HostError("no record " + record_path(context.config.record_dir, instance_of(state)) +
				": createRuntime did not run for this container");
	return record;
}

} // namespace

int poststart(StageContext context)
{
	BundleConfig bundle = read_bundle_config(context.state.bundle);
	std::optional<Record> record = record_for_poststart(context, bundle);
	if (!record)
		return exit_ok;
	std::unique_ptr<Backend> backend = make_backend(record->cgroups);
	if (!backend) {
		spdlog::info("sandbox-only mode: the VMM stays in the container's cgroup");
		return exit_ok;
	}
	Config &config = context.config;
	config.qmp_socket = record->qmp_socket;
	ProcessRef container = container_process(context.state);

	auto deadline =
		std::chrono::steady_clock::now() + std::chrono::milliseconds(config.poststart_budget_ms);
	SettleResult result =
		PlacementLoop(*backend, ProcFs(), PlacementOptions::from(config), container).run(deadline);
	bool placing = !result.complete && !result.container_gone && may_become_vmm(config, result, bundle);
	bool watching = result.complete && config.watch_vmm;
	if (placing || watching)
		return hand_over(context, *record, *backend, result, container);
	log_settled(result, "poststart");
	store_placement(*record, *backend, result);
	write_record(config.record_dir, *record);
	return exit_ok;
}

int poststop(const StageContext &context)
{
	const State &state = context.state;
	std::optional<Record> record;
	try {
		record = read_record(context.config.record_dir, instance_of(state), state.id);
	} catch (const HostError &e) {
		// Nothing of it can be trusted to name what to remove: `vmm-cgroupctl gc` finds what is left.
		spdlog::error("{}: nothing removed", e.what());
		return exit_failure;
	}
	if (!record) {
		spdlog::info("no record: nothing to clean");
		return exit_ok;
	}
	Teardown teardown = clean_up(context.config.record_dir, *record);
	if (teardown.failures > 0)
		return exit_failure;
	// What it really did: at poststop the runtime has usually removed S, and S's children with it.
	spdlog::info("cleaned up{}: {}",
		     record->phase == Record::Phase::creating ? " what an interrupted createRuntime made"
							      : "",
		     teardown.summary());
	return exit_ok;
}

} // namespace vmmcg
