// The order in which vmleased carries out a Step, and with it the promises
// the order keeps (Daemon::apply runs the stages as listed):
//
//  - the lock-failure plan is written before anyone hears of a new lease
//    (Publish) and before sanlock is asked for one (Sanlock): the killpath
//    helper's fallback covers every lease that may be held;
//  - the state file is written, synchronously, before sanlock is asked for
//    a lease, before a lock failure's releases and before a stale verdict:
//    a crash right after cannot leave a lease nobody can attribute, nor
//    forget the versions a paused machine's leases must be taken back at or
//    that a stale machine must never be resumed. An acquire is not made at
//    all if that write fails;
//  - sanlock's calls go out before anything else is told: they are the slow
//    part and run on other threads;
//  - machine effects (terminate, kill, freeze) come last, once the journal
//    and the bus have said why.
#pragma once

#include "core/step.hpp"

#include <vector>

namespace vmlease {

enum class Stage {
    WritePlan,      // the lock-failure plan (vmlease-lockfailure's fallback)
    SaveState,      // the state file, now
    SaveStateSoon,  // the state file, on the next loop iteration
    Sanlock,        // sanlock_effects (no acquire if SaveState failed)
    Journal,        // journal::record
    Publish,        // replies, objects, signals, properties
    NotifyStatus,   // sd_notify STATUS=
    Timers,         // grace, retry and protection timers
    RetireHolder,   // vmlease-holder goes once no lease needs it
    MachineEffects, // terminate, kill, freeze, thaw, start
    LockFailuresDone,  // lock failure actions with no machine effect, journalled
};

const char *to_string(Stage stage);

// The stages `step` needs, in the order they run.
std::vector<Stage> stages_for(const Step &step);

}  // namespace vmlease
