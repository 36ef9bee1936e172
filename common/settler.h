// The detached settler: poststart's work, carried on after the hook returned.
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "procfs.h"
#include "unique_fd.h"

namespace vmmcg {

// The settler: poststart's own binary executed again (/proc/self/exe with --settler and what it needs to
// find its record), in its own session, stdio on /dev/null, no inherited fd but its go pipe and its slot,
// an empty environment, at idle priority, reparented when the hook exits: the runtime waits for the hook's
// stdout and stderr to close, and must not wait for the settler. It waits for EOF on its go pipe
// (settler_go_fd), which comes once the caller called let_go() on the returned handle (or exited), before
// it reads or writes the record, so that its write lands after the caller's.
class SettlerHandle
{
public:
	SettlerHandle(ProcessRef ref, int go_fd) : ref_(ref), go_(go_fd) {}
	const ProcessRef &process() const { return ref_; }
	// Closes the go pipe: the settler may now write the record (the caller has written its own).
	void let_go() { go_.reset(); }

private:
	ProcessRef ref_;
	UniqueFd go_;
};

// The settler's end of the go pipe, and the lock of its slot: the fds it keeps.
inline constexpr int settler_go_fd = 3;
inline constexpr int settler_slot_fd = 4;

// What the settler is started with; it reads the rest (the configuration, then the record) itself.
struct SettlerStart {
	std::optional<std::string> config_path; // as the hook was given it: none for the default
	std::string name, id;                   // the record's
	ProcessRef container;                   // the container's process
};

// Starts the settler. nullopt when it could not be started (all config.max_settlers slots are taken, this
// process started one already, a system call failed), with `why` set to one line saying which.
std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const Config &config,
					   const SettlerStart &start, std::string &why);

// The settler's part, in the binary executed with --settler: `config` read from start.config_path.
int run_settler(const Config &config, const SettlerStart &start);

// Blocks until the go fd reaches EOF (or gives a byte, or fails: the caller never writes one).
void wait_for_go(int go_fd);

} // namespace vmmcg
