#include "cleanup.h"

#include <signal.h>

#include <chrono>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>

#include "backend.h"

namespace vmmcg {

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

std::size_t clean_up(const std::string &record_dir, Record &record)
{
	stop_settler(record.settler);
	stop_settler(record.watcher);
	std::unique_ptr<Backend> backend = make_backend(record.cgroups);
	std::size_t failures = backend ? backend->teardown() : 0;
	if (std::error_code ec = remove_record(record_dir, record.name)) {
		spdlog::error("removing {}: {}", record_path(record_dir, record.name), ec.message());
		++failures;
	}
	return failures;
}

} // namespace vmmcg
