// What on_lockfailure does to a machine, one row per action. The core
// (vmleased acting on sanlock's lock failure) and vmlease-lockfailure (the
// helper acting from the plan when the agent cannot) read the same row, so
// the two can never treat an action differently.
#pragma once

#include "config_model.hpp"

namespace vmlease {

struct LockFailureEffect {
    LockFailureAction action;
    // machined's TerminateMachine; done directly as SIGTERM and, after a
    // grace period, SIGKILL to whatever is left.
    bool terminate;
    // machined's KillMachine(all, signal) and the direct signal: SIGKILL
    // (poweroff: cgroup.kill directly), SIGSTOP (pause: cgroup.freeze
    // directly); 0 when terminating or doing nothing.
    int signal;
    // The machine is stopped: its leases stay held until it is gone, since a
    // VM that does not die can still write.
    bool stops_machine;
    // Its service unit is started again once it is gone.
    bool restarts_unit;
};

const LockFailureEffect &effect_for(LockFailureAction action);

}  // namespace vmlease
