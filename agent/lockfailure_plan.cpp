#include "lockfailure_plan.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
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

bool write_plan_file(const std::string &path, const std::string &content) {
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp.c_str(), path.c_str()) == 0)
        return true;
    unlink(tmp.c_str());
    return false;
}

}  // namespace vmlease
