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

// The holder the pid file names, if sanlock says it holds the sentinel; 0 if none.
pid_t find_lease_holder(const SanlockSettings &s);

// Ask holder `pid` to exit, freeing the sentinel, if sanlock says it holds
// this host's sentinel (a pid that was reused is left alone); the pid file
// goes if it still names it. Returns `pid`, or 0 if it was not the holder.
pid_t stop_lease_holder(const SanlockSettings &s, pid_t pid);

}  // namespace vmlease
