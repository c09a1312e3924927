#include "step.hpp"

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
    move_into(effects, o.effects);
    move_into(machine_effects, o.machine_effects);
    move_into(grace_timers, o.grace_timers);
    move_into(retry_timers, o.retry_timers);
    move_into(protection_timers, o.protection_timers);
    move_into(unprotected, o.unprotected);
    move_into(replies, o.replies);
    move_into(changes, o.changes);
    move_into(conflicts, o.conflicts);
    move_into(machine_changes, o.machine_changes);
    move_into(lock_failures, o.lock_failures);
    lockspace_state_changed = lockspace_state_changed || o.lockspace_state_changed;
}

bool Step::empty() const {
    return effects.empty() && machine_effects.empty() && grace_timers.empty() && replies.empty() && changes.empty() &&
           conflicts.empty() && machine_changes.empty() && lock_failures.empty() &&
           retry_timers.empty() && protection_timers.empty() && unprotected.empty() && !lockspace_state_changed;
}

}  // namespace vmlease
