// The detached settler: poststart's work, carried on after the hook returned.
#pragma once

#include <functional>
#include <optional>

#include "config.h"
#include "procfs.h"
#include "unique_fd.h"

namespace vmmcg {

// Starts `work` in a detached child (its own session, stdio on /dev/null, no other inherited fd, reparented
// when the hook exits): the runtime waits for the hook's stdout and stderr to close, and must not wait for
// the settler. `work` gets a "go" fd (settler_go_fd) that reaches EOF once the caller
// called let_go() on the returned handle (or exited): it waits on it before it writes the record, so that
// its write lands after the caller's. Returns the settler, or std::nullopt if it could not be started.
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

// nullopt also when all config.max_settlers slots are taken.
std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const Config &config,
					   const std::function<int(int go_fd)> &work);

// Blocks until the go fd reaches EOF.
void wait_for_go(int go_fd);

} // namespace vmmcg
