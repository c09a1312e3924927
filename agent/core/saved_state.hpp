// What the agent must remember across its own crash or restart, and cannot
// learn again from sanlock or machined: which owner each lease it holds
// belongs to. sanlock keeps the leases themselves (they are PERSISTENT and
// become orphans of this host when the agent dies) but not their owners;
// machined says which machines still run but not which disks an AcquireDisk
// or RegisterMachine gave them. The daemon keeps this written in
// $RUNTIME_DIRECTORY; MachineTracker::restore() turns it back into leases.
#pragma once

#include "config.hpp"

#include <cstdint>
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
};

struct SavedLease {
    std::string resource;
    std::string disk;
    LeaseMode mode = LeaseMode::Exclusive;
    // Empty: the lease was being released (or acquired for nobody) when the
    // agent stopped; whatever sanlock still holds of it is to be released.
    std::vector<std::string> owners;
    std::vector<std::string> aliases = {};  // taken and given back with it
};

struct SavedState {
    std::vector<SavedOwner> owners;
    std::vector<SavedLease> leases;
    const SavedOwner *owner(const std::string &name) const;
};

inline constexpr const char *kSavedStateFile = "leases";

std::string format_saved_state(const SavedState &state);
// nullopt, with `error` naming the line, if the text is not a state file
// this version wrote: a corrupt file is reported and not trusted.
std::optional<SavedState> parse_saved_state(const std::string &text, std::string &error);

}  // namespace vmlease
