// What the agent must remember across its own crash or restart, and cannot
// learn again from sanlock or machined: which owner each lease it holds
// belongs to. sanlock keeps the leases themselves (they are PERSISTENT and
// become orphans of this host when the agent dies) but not their owners;
// machined says which machines still run but not which disks an AcquireDisk
// or RegisterMachine gave them. The daemon keeps this written in
// $RUNTIME_DIRECTORY; MachineTracker::restore() turns it back into leases.
#pragma once

#include "config_model.hpp"
#include "step.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vmlease {

struct SavedOwner {
    // Machine: a machine machined knew; Reserved: a RegisterMachine whose
    // machine had not started yet; Api: any other AcquireDisk owner.
    enum class Kind { Machine, Reserved, Api };
    std::string name;
    Kind kind = Kind::Api;
    uint64_t reserved_until = 0;  // Reserved: CLOCK_REALTIME seconds
    uint32_t leader = 0;          // Machine: its leader then (0: not known)
};

struct SavedLease {
    std::string resource;
    std::string disk;
    LeaseMode mode = LeaseMode::Exclusive;
    // Empty: the lease was being released (or acquired for nobody) when the
    // agent stopped; whatever sanlock still holds of it is to be released.
    std::vector<std::string> owners;
    std::vector<std::string> aliases = {};  // taken and given back with it
    LeaseVersions versions = {};  // of each of its resources (itself, its aliases')
};

// A running machine's disk whose lease it held and does not hold now
// (released in a lock failure, lost with the sanlock daemon): it is taken
// again only at these versions, so that a machine paused meanwhile never
// resumes over another host's writes. `stale`: someone took it since.
struct SavedPin {
    std::string owner;
    uint32_t leader = 0;  // the machine's leader then: a new machine of that name starts afresh
    std::string resource;
    std::string disk;
    LeaseMode mode = LeaseMode::Exclusive;
    bool stale = false;
    std::vector<std::string> aliases = {};
    LeaseVersions versions = {};
};

// A machine vmlease paused (SIGSTOP by on_lockfailure, or its unit frozen),
// or found stale (never to be resumed).
struct SavedPause {
    std::string owner;
    uint32_t leader = 0;
    bool stopped = false;
    bool frozen = false;
    bool stale = false;
};

struct SavedState {
    std::vector<SavedOwner> owners;
    std::vector<SavedLease> leases;
    std::vector<SavedPin> pins = {};
    std::vector<SavedPause> paused = {};
    const SavedOwner *owner(const std::string &name) const;
};

inline constexpr const char *kSavedStateFile = "leases";

std::string format_saved_state(const SavedState &state);
// nullopt, with `error` naming the line, if the text is not a state file
// this version wrote: a corrupt file is reported and not trusted.
std::optional<SavedState> parse_saved_state(const std::string &text, std::string &error);

}  // namespace vmlease
