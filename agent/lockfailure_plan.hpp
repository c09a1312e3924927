// What vmlease-lockfailure does if the agent cannot answer it: the plan the
// agent keeps written in $RUNTIME_DIRECTORY (which machines hold leases and
// their on_lockfailure action, and the bus machined is on), so that
// protection never depends on the agent being alive.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace vmlease {

struct LockFailurePlan {
    std::string bus_address;  // empty: the default system bus
    struct Entry {
        std::string machine;
        std::string action;  // poweroff | terminate | pause | ignore | restart
    };
    std::vector<Entry> machines;
};

inline constexpr const char *kLockFailurePlanFile = "lockfailure-plan";
inline constexpr const char *kLockFailureSocket = "lockfailure.sock";

std::string format_plan(const LockFailurePlan &plan);
// nullopt if the text is not a plan (a corrupt file is ignored, not trusted).
std::optional<LockFailurePlan> parse_plan(const std::string &text);

}  // namespace vmlease
