// Which polkit action guards which D-Bus method. One table, denying by
// default: a method that is not listed here is refused, so a method added to
// the XML without a decision about its authorization cannot be called.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vmlease {

struct MethodAuthorization {
    const char *interface;
    const char *method;
    const char *action;  // polkit action id; nullptr: read-only, open to every caller
};

enum class Authorization { Open, NeedsAction, Denied };

struct AuthorizationDecision {
    Authorization kind = Authorization::Denied;
    std::string action;  // for NeedsAction
};

const std::vector<MethodAuthorization> &authorization_table();
AuthorizationDecision authorization_for(std::string_view interface, std::string_view method);

}  // namespace vmlease
