// Starting and finding vmlease-holder (lease_holder_main.cpp), the live
// sanlock client that keeps the killpath alive while vmleased is not.
// Everything here blocks (process start, sanlock's socket, disk I/O for the
// sentinel): call it on an effector worker, never on the event loop.
#pragma once

#include "sanlock_client.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace vmlease {

inline constexpr const char *kHolderPidFile = "holder.pid";

// The lease this host's holder keeps in the lockspace. Not a disk's name:
// those are 32 hex digits (md5), never with dashes.
std::string sentinel_resource(uint32_t host_id);

struct HolderOutcome {
    pid_t pid = 0;         // the holder, 0 if there is none
    bool started = false;  // started now (false: one was already running)
    std::string problem;   // why there is none, for the journal and status
};

// Make sure a holder holds this host's sentinel: the one named in the pid
// file if sanlock says it holds the sentinel, or a new one.
HolderOutcome ensure_lease_holder(const SanlockSettings &s);

// Ask the holder named in the pid file (if sanlock says it is ours) to exit,
// freeing the sentinel. Returns its pid, or 0 if there was none.
pid_t stop_lease_holder(const SanlockSettings &s);

}  // namespace vmlease
