// Errors the API promises to callers (org.vmlease.Error.* and the standard
// ones). These are expected outcomes, answered to the caller; they are never
// fatal to the daemon.
#pragma once

#include <string>

namespace vmlease {

enum class ErrorKind {
    LeaseHeld,
    LockspaceUnavailable,
    InvalidDisk,
    NoSuchOwner,
    NoSuchLease,
    SanlockFailure,
    ConfigInvalid,
    Failed,
    InvalidArgs,
    LimitsExceeded,
    NotSupported,
    AccessDenied,
    InteractiveAuthorizationRequired,
    LeaseStale,  // a paused machine's lease was taken by someone else since it held it
};

struct ApiError {
    ErrorKind kind;
    std::string message;
};

// The D-Bus error name for a kind (org.vmlease.Error.X or org.freedesktop.DBus.Error.X).
const char *error_name(ErrorKind kind);

}  // namespace vmlease
