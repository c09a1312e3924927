#include "authorization_table.hpp"

namespace vmlease {

const std::vector<MethodAuthorization> &authorization_table() {
    static const std::vector<MethodAuthorization> table = {
        {"org.vmlease.Manager", "AcquireDisk", "org.vmlease.acquire-lease"},
        {"org.vmlease.Manager", "RegisterMachine", "org.vmlease.acquire-lease"},
        {"org.vmlease.Manager", "ReleaseDisk", "org.vmlease.release-lease"},
        {"org.vmlease.Manager", "ReleaseMachine", "org.vmlease.release-lease"},
        {"org.vmlease.Manager", "CleanupLeases", "org.vmlease.cleanup"},
        {"org.vmlease.Manager", "Reload", "org.vmlease.manage"},
        {"org.vmlease.Manager", "ResumeMachine", "org.vmlease.manage"},
        {"org.vmlease.Manager", "ListLeases", nullptr},
        {"org.vmlease.Manager", "ListMachines", nullptr},
        {"org.vmlease.Manager", "InspectDisk", nullptr},
        // It says where paths lead (symlink targets in directories the caller
        // may not search): for those who may take leases.
        {"org.vmlease.Manager", "IdentifyDisk", "org.vmlease.acquire-lease"},
        {"org.vmlease.Machine", "Release", "org.vmlease.release-lease"},
    };
    return table;
}

AuthorizationDecision authorization_for(std::string_view interface, std::string_view method) {
    for (const auto &entry : authorization_table()) {
        if (interface != entry.interface || method != entry.method)
            continue;
        if (!entry.action)
            return {Authorization::Open, ""};
        return {Authorization::NeedsAction, entry.action};
    }
    return {Authorization::Denied, ""};
}

}  // namespace vmlease
