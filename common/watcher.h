// The settler and watcher: poststart's work carried on in a detached process (settler.h starts it). It
// places the VMM until the placement is complete or settle_timeout_ms passes (the settler), then, for as
// long as the VMM runs, watches it (the watcher): a thread that appears or renames itself (a hot-plugged
// vCPU, KVM's worker threads, a vCPU that named itself late) is placed within milliseconds, woken by the
// process events connector (proc_events.h), or within a second where that is refused; and once a second
// it checks that the container's CPU limit is still where the split put it (an in-place resize, systemd
// writing a unit's CPUQuota= back on daemon-reload). poststop ends it.
#pragma once

#include "config.h"
#include "procfs.h"
#include "record.h"
#include "settler.h"

namespace vmmcg {

// The detached process's work (settler.h starts it). go_fd reaches EOF once poststart has written the record
// naming this process (or died: then the record names no one, and it ends at once). The record says what is
// left: placing (it names this process the settler), or only watching (the watcher: poststart's placement
// was complete: one pass, for a thread made before this process subscribed to the events, and no settling
// loop).
int settle_and_watch(const Config &config, const SettlerStart &start, int go_fd);

} // namespace vmmcg
