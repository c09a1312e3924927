#include "spellings.hpp"

namespace vmlease {

using namespace spellings;

const char *to_string(LeaseMode m) { return name_of(kLeaseModes, m); }
const char *to_string(ConflictAction a) { return name_of(kConflictActions, a); }
const char *to_string(LockFailureAction a) { return name_of(kLockFailureActions, a); }

std::optional<LeaseMode> lease_mode_from_string(const std::string &s) { return value_of(kLeaseModes, s); }

const char *to_string(UnprotectedAction a) { return name_of(kUnprotectedActions, a); }
std::optional<UnprotectedAction> unprotected_action_from_string(const std::string &s) {
    return value_of(kUnprotectedActions, s);
}
std::optional<ConflictAction> conflict_action_from_string(const std::string &s) {
    return value_of(kConflictActions, s);
}

std::optional<LockFailureAction> lock_failure_action_from_string(const std::string &s) {
    return value_of(kLockFailureActions, s);
}

}  // namespace vmlease
