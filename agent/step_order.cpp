#include "step_order.hpp"

#include <algorithm>

namespace vmlease {

const char *to_string(Stage stage) {
    switch (stage) {
    case Stage::WritePlan: return "write-plan";
    case Stage::SaveState: return "save-state";
    case Stage::SaveStateSoon: return "save-state-soon";
    case Stage::Sanlock: return "sanlock";
    case Stage::Journal: return "journal";
    case Stage::Publish: return "publish";
    case Stage::NotifyStatus: return "notify-status";
    case Stage::Timers: return "timers";
    case Stage::RetireHolder: return "retire-holder";
    case Stage::MachineEffects: return "machine-effects";
    case Stage::LockFailuresDone: return "lock-failures-done";
    }
    return "?";
}

std::vector<Stage> stages_for(const Step &step) {
    const bool acquiring = std::any_of(step.sanlock_effects.begin(), step.sanlock_effects.end(),
                                       [](const SanlockEffect &e) { return std::holds_alternative<AcquireEffect>(e); });
    const bool changed = !step.lease_changes.empty() || !step.machine_changes.empty();
    std::vector<Stage> stages;
    if (changed || acquiring)
        stages.push_back(Stage::WritePlan);
    if (acquiring || !step.lock_failures.empty() || !step.stale.empty())
        stages.push_back(Stage::SaveState);
    else if (changed)
        stages.push_back(Stage::SaveStateSoon);
    if (!step.sanlock_effects.empty())
        stages.push_back(Stage::Sanlock);
    stages.push_back(Stage::Journal);
    stages.push_back(Stage::Publish);
    if (step.lockspace_state_changed)
        stages.push_back(Stage::NotifyStatus);
    if (!step.grace_timers.empty() || !step.retry_timers.empty() || !step.protection_timers.empty())
        stages.push_back(Stage::Timers);
    stages.push_back(Stage::RetireHolder);
    if (!step.machine_effects.empty())
        stages.push_back(Stage::MachineEffects);
    if (!step.lock_failures.empty())
        stages.push_back(Stage::LockFailuresDone);
    return stages;
}

}  // namespace vmlease
