#include "lock_failure_effect.hpp"

#include <array>
#include <csignal>
#include <stdexcept>

namespace vmlease {
namespace {

constexpr std::array<LockFailureEffect, 5> kEffects{{
    //  action                      terminate signal   stops  restarts
    {LockFailureAction::Poweroff, false, SIGKILL, true, false},
    {LockFailureAction::Terminate, true, 0, true, false},
    {LockFailureAction::Pause, false, SIGSTOP, false, false},
    {LockFailureAction::Ignore, false, 0, false, false},
    {LockFailureAction::Restart, true, 0, true, true},
}};

}  // namespace

const LockFailureEffect &effect_for(LockFailureAction action) {
    for (const auto &e : kEffects)
        if (e.action == action)
            return e;
    throw std::logic_error("no lock failure effect for an action out of range");
}

}  // namespace vmlease
