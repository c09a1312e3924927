#include "step.hpp"

#include <algorithm>

#include "disk_path.hpp"

namespace vmlease {

const char *to_string(LeaseState s) {
    switch (s) {
    case LeaseState::Acquiring: return "acquiring";
    case LeaseState::Held: return "held";
    case LeaseState::Releasing: return "releasing";
    }
    return "held";
}

namespace {
template <typename T>
void move_into(std::vector<T> &to, std::vector<T> &from) {
    for (auto &x : from)
        to.push_back(std::move(x));
}
}  // namespace

void Step::append(Step &&o) {
    move_into(sanlock_effects, o.sanlock_effects);
    move_into(machine_effects, o.machine_effects);
    move_into(grace_timers, o.grace_timers);
    move_into(retry_timers, o.retry_timers);
    move_into(protection_timers, o.protection_timers);
    move_into(unprotected, o.unprotected);
    move_into(replies, o.replies);
    move_into(lease_changes, o.lease_changes);
    move_into(conflicts, o.conflicts);
    move_into(machine_changes, o.machine_changes);
    move_into(lock_failures, o.lock_failures);
    move_into(stale, o.stale);
    move_into(resumed, o.resumed);
    lockspace_state_changed = lockspace_state_changed || o.lockspace_state_changed;
}

bool Step::empty() const {
    return sanlock_effects.empty() && machine_effects.empty() && grace_timers.empty() && replies.empty() && lease_changes.empty() &&
           conflicts.empty() && machine_changes.empty() && lock_failures.empty() && stale.empty() && resumed.empty() &&
           retry_timers.empty() && protection_timers.empty() && unprotected.empty() && !lockspace_state_changed;
}

std::vector<std::string> alias_resources(const Lease &lease) {
    std::vector<std::string> out;
    for (const auto &a : lease.aliases)
        out.push_back(lease_resource_name(a));
    return out;
}

AcquireEffect acquire_effect(const Lease &lease, uint32_t owner_pid, bool adopt_orphan,
                             const LeaseVersions &pins) {
    AcquireEffect e{lease.resource, lease.disk, lease.mode, owner_pid, adopt_orphan, alias_resources(lease)};
    // Only the lease's own names: an alias the request no longer takes is not pinned.
    for (const auto &[resource, version] : pins)
        if (version.lver != 0 && (resource == e.resource ||
                          std::find(e.alias_resources.begin(), e.alias_resources.end(), resource) !=
                              e.alias_resources.end()))
            e.pins[resource] = version;
    return e;
}

ReleaseEffect release_effect(const Lease &lease, bool orphan) {
    return {lease.resource, orphan, alias_resources(lease)};
}

}  // namespace vmlease
