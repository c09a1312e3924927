#include "lockfailure_plan.hpp"

#include <sstream>

namespace vmlease {

// One line per item; machine names never contain spaces (check_owner_name).
std::string format_plan(const LockFailurePlan &plan) {
    std::string out = "vmlease-lockfailure-plan 1\n";
    if (!plan.bus_address.empty())
        out += "bus " + plan.bus_address + "\n";
    for (const auto &m : plan.machines)
        out += "machine " + m.machine + " " + m.action + "\n";
    return out;
}

std::optional<LockFailurePlan> parse_plan(const std::string &text) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != "vmlease-lockfailure-plan 1")
        return std::nullopt;
    LockFailurePlan plan;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string kind;
        words >> kind;
        if (kind == "bus") {
            words >> plan.bus_address;
        } else if (kind == "machine") {
            LockFailurePlan::Entry e;
            if (!(words >> e.machine >> e.action))
                return std::nullopt;
            plan.machines.push_back(e);
        } else if (!kind.empty()) {
            return std::nullopt;
        }
    }
    return plan;
}

}  // namespace vmlease
