#include "placement.h"

#include <fcntl.h>

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "errors.h"
#include "host.h"
#include "qmp.h"

namespace vmmcg {

namespace {

const char *thread_file(const Target &target)
{
	return target.v2 ? "cgroup.threads" : "tasks";
}

bool is_gone(const std::error_code &ec)
{
	return ec == std::errc::no_such_process || ec == std::errc::no_such_file_or_directory;
}

// How long after `at` the youngest thread is `quiet` old; zero or less when it already was. A start time
// is a whole clock tick (10 ms) rounded down, so the thread is taken as one tick younger than it may be.
std::chrono::nanoseconds until_quiet(std::uint64_t youngest, std::chrono::milliseconds quiet,
				     std::chrono::nanoseconds at)
{
	auto born = clock_tick() * static_cast<std::int64_t>(youngest + 1);
	return born + quiet - at;
}

} // namespace

Placer::Placer(const Layout &layout, const ProcFs &proc, const std::vector<std::string> &vcpu_patterns)
	: layout_(layout), proc_(proc), patterns_(vcpu_patterns)
{
	for (const auto &target : layout.targets) {
		std::string key = target.v2 ? "" : target.controllers.substr(0, target.controllers.find(','));
		opened_.push_back({&target, CgroupMount::open(target.mount), key});
	}
}

ProcCgroups Placer::check_vmm(const ProcessRef &vmm) const
{
	std::error_code ec;
	ProcCgroups where = parse_proc_cgroup(proc_.process_cgroup(vmm.pid, ec));
	if (ec)
		return {}; // gone: the pass notices
	for (const auto &opened : opened_) {
		const Target &t = *opened.target;
		auto it = where.find(opened.key);
		std::string path = it == where.end() ? "(none)" : it->second;
		if (path != t.sandbox && path != t.vcpu && path != t.overhead)
			throw std::runtime_error("VMM pid " + std::to_string(vmm.pid) + " is in " +
						 opened.mount.describe(path) +
						 ", not in this container's cgroups: refusing to move it");
	}
	return where;
}

std::error_code Placer::move_thread(Opened &opened, const std::string &cgroup, pid_t tid)
{
	std::string key = opened.target->mount + cgroup;
	auto it = thread_files_.find(key);
	if (it == thread_files_.end()) {
		std::error_code ec;
		UniqueFd fd = opened.mount.open_file(cgroup, thread_file(*opened.target), O_WRONLY, ec);
		if (!fd.valid())
			throw std::system_error(
				ec, "opening " + opened.mount.describe(cgroup, thread_file(*opened.target)));
		it = thread_files_.emplace(key, std::move(fd)).first;
	}
	return write_id(it->second.get(), tid);
}

PassResult Placer::place(const ProcessRef &vmm, const std::optional<std::vector<pid_t>> &vcpu_tids)
{
	PassResult result;
	if (!proc_.alive(vmm)) {
		result.vmm_gone = true;
		return result;
	}
	ProcCgroups vmm_where = check_vmm(vmm);

	if (!process_moved_) {
		for (auto &opened : opened_) {
			if (opened.target->v2)
				continue; // a threaded cgroup takes threads, not processes
			// Only a VMM still in S: once its main thread is in O, an earlier stage moved the
			// group, and moving it again would take the vCPU threads out of S until this pass put
			// them back (the settler after poststart, a second settle in one process).
			if (auto it = vmm_where.find(opened.key);
			    it != vmm_where.end() && it->second == opened.target->overhead)
				continue;
			std::error_code ec = opened.mount.write_file(opened.target->overhead, "cgroup.procs",
								     std::to_string(vmm.pid));
			if (is_gone(ec)) {
				result.vmm_gone = true;
				return result;
			}
			if (ec)
				throw std::system_error(ec,
							"moving VMM pid " + std::to_string(vmm.pid) + " to " +
								opened.mount.describe(opened.target->overhead,
										      "cgroup.procs"));
		}
		process_moved_ = true;
	}

	std::error_code ec;
	std::vector<ThreadInfo> threads = list_threads(proc_, vmm.pid, patterns_, ec);
	if (ec) {
		result.vmm_gone = true;
		return result;
	}
	if (vcpu_tids) {
		// tid -> vCPU index, built once a pass: linear in threads, not threads x vCPUs.
		std::map<pid_t, int> index;
		for (std::size_t i = 0; i < vcpu_tids->size(); ++i)
			index.emplace((*vcpu_tids)[i], static_cast<int>(i));
		for (auto &thread : threads) {
			auto it = index.find(thread.tid);
			thread.vcpu = it == index.end() ? std::nullopt : std::optional<int>(it->second);
		}
	}
	// Where each thread is, from the thread files of this container's cgroups: a few reads per pass,
	// where reading every thread's /proc/<pid>/task/<tid>/cgroup was one per thread and the largest cost
	// of a pass. Read after the threads were listed, so that a listed thread is in one of them, or
	// elsewhere.
	std::vector<Members> members;
	for (auto &opened : opened_)
		members.push_back(membership(opened));
	for (const auto &thread : threads) {
		bool gone = false;
		for (std::size_t i = 0; i < opened_.size(); ++i) {
			Opened &opened = opened_[i];
			const Target &t = *opened.target;
			const std::string &want = thread.vcpu ? t.vcpu : t.overhead;
			auto it = members[i].find(thread.tid);
			if (it == members[i].end()) {
				// In none of them: exited since it was listed, or somewhere else, left alone.
				std::error_code read_ec;
				std::string text = proc_.thread_cgroup(vmm.pid, thread.tid, read_ec);
				if (read_ec) {
					gone = true;
					break;
				}
				ProcCgroups actual = parse_proc_cgroup(text);
				if (auto at = actual.find(opened.key); at != actual.end())
					spdlog::warn("thread {} ({}) is in {}, not in this container's "
						     "cgroups: left alone",
						     thread.tid, thread.name,
						     opened.mount.describe(at->second));
				continue;
			}
			if (*it->second == want)
				continue;
			std::error_code move_ec = move_thread(opened, want, thread.tid);
			if (is_gone(move_ec)) {
				gone = true;
				break;
			}
			// EINVAL on v2: a thread still being created cannot migrate yet; the next pass
			// retries.
			if (move_ec == std::errc::invalid_argument && t.v2) {
				++result.moved;
				result.retry = true;
				continue;
			}
			if (move_ec)
				throw std::system_error(move_ec,
							"moving thread " + std::to_string(thread.tid) + " (" +
								thread.name + ") to " +
								opened.mount.describe(want, thread_file(t)));
			++result.moved;
		}
		if (gone)
			continue;
		result.youngest = std::max(result.youngest, thread.start_time);
		result.tids.push_back(thread.tid);
		if (thread.vcpu)
			result.vcpus.push_back(thread.tid);
	}
	return result;
}

Placer::Members Placer::membership(const Opened &opened) const
{
	const Target &t = *opened.target;
	Members members;
	for (const std::string *cgroup : {&t.sandbox, &t.vcpu, &t.overhead}) {
		if (cgroup != &t.sandbox && *cgroup == t.sandbox)
			continue; // v1: the vCPUs' cgroup is S itself
		std::error_code ec;
		for (pid_t tid : opened.mount.read_ids(*cgroup, thread_file(t), ec))
			members.emplace(tid, cgroup);
		if (ec && ec != std::errc::no_such_file_or_directory) // ENOENT: removed by someone else
			throw std::system_error(ec,
						"reading " + opened.mount.describe(*cgroup, thread_file(t)));
	}
	return members;
}

bool Placer::same_threads(const ProcessRef &vmm, const std::vector<pid_t> &tids) const
{
	std::error_code ec;
	return proc_.thread_ids(vmm.pid, ec) == tids && !ec;
}

SettleResult settle(const Layout &layout, const ProcFs &proc, const Config &config,
		    const ProcessRef &container, std::chrono::steady_clock::time_point deadline)
{
	using namespace std::chrono_literals;
	SettleResult result;
	std::optional<Placer> placer;
	std::optional<std::vector<pid_t>> qmp_vcpus;
	unsigned qmp_tries = 0;
	auto delay = 5ms;
	for (;;) {
		std::optional<std::chrono::nanoseconds> wait;
		if (!result.vmm) {
			result.vmm = find_vmm(proc, container.pid, config.vmm_names, config.vmm_search_depth);
			if (!result.vmm && !proc.alive(container)) {
				result.container_gone = true;
				return result;
			}
		}
		if (result.vmm) {
			if (!placer)
				placer.emplace(layout, proc, config.vcpu_thread_patterns);
			// QMP answers once the VMM is up; a few tries, then thread names are the source.
			if (config.qmp_socket && !qmp_vcpus && qmp_tries < 5) {
				std::string why;
				qmp_vcpus = query_vcpu_threads(
					proc, result.vmm->pid, *config.qmp_socket,
					{std::chrono::milliseconds(config.qmp_timeout_ms)}, why);
				if (!qmp_vcpus && ++qmp_tries == 5)
					spdlog::warn("QMP {}: {}: vCPUs found by thread names",
						     *config.qmp_socket, why);
				else if (!qmp_vcpus)
					spdlog::debug("QMP {}: {}", *config.qmp_socket, why);
			}
			result.vcpu_source = qmp_vcpus ? "qmp" : "thread-names";
			auto read_at = boot_time();
			PassResult pass = placer->place(*result.vmm, qmp_vcpus);
			if (pass.vmm_gone) {
				spdlog::warn("VMM pid {} exited during placement", result.vmm->pid);
				result.vmm.reset();
				result.vcpus.clear();
				return result;
			}
			result.vcpus = pass.vcpus;
			// Threads created or gone while the pass moved others: another pass, after the
			// backoff.
			if (!pass.retry && !pass.vcpus.empty() &&
			    placer->same_threads(*result.vmm, pass.tids)) {
				if (qmp_vcpus && pass.vcpus.size() == qmp_vcpus->size()) {
					result.complete = true;
					return result;
				}
				// Quiet when this pass read the threads: every name it matched was set long
				// before. Not yet: one more pass once it is (a thread seen newborn may not
				// have its name).
				auto quiet = std::chrono::milliseconds(config.settle_quiet_ms);
				if (until_quiet(pass.youngest, quiet, read_at) <= 0ns) {
					result.complete = true;
					return result;
				}
				wait = std::max(until_quiet(pass.youngest, quiet, boot_time()),
						std::chrono::nanoseconds(0));
			}
		}
		auto now = std::chrono::steady_clock::now();
		if (now >= deadline)
			return result;
		std::chrono::steady_clock::duration pause =
			wait ? std::chrono::steady_clock::duration(*wait) : delay;
		std::this_thread::sleep_for(std::min(pause, deadline - now));
		if (!wait)
			delay = std::min(delay * 2, std::chrono::milliseconds(250));
	}
}

} // namespace vmmcg
