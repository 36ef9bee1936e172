// The detached settler: poststart's work, carried on after the hook returned.
#pragma once

#include <functional>
#include <optional>

#include "discovery.h"
#include "unique_fd.h"

namespace vmmcg {

// Starts `work` in a detached grandchild (double fork, setsid, stdio on /dev/null, no other inherited fd),
// as containers/oci-seccomp-bpf-hook does: the runtime waits for the hook's stdout and stderr to close, and
// must not wait for the settler. `work` gets a "go" fd that reaches EOF once the caller called release() on
// the returned handle (or exited): it waits on it before it writes the record, so that its write lands after
// the caller's. Returns the settler, or std::nullopt if it could not be started.
class SettlerHandle
{
public:
	SettlerHandle(ProcessRef ref, int go_fd) : ref_(ref), go_(go_fd) {}
	const ProcessRef &process() const { return ref_; }
	void release() { go_.reset(); }

private:
	ProcessRef ref_;
	UniqueFd go_;
};

std::optional<SettlerHandle> spawn_settler(const ProcFs &proc, const std::function<int(int go_fd)> &work);

// Blocks until the go fd reaches EOF.
void wait_for_go(int go_fd);

} // namespace vmmcg
