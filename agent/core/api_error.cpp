#include "api_error.hpp"

namespace vmlease {

const char *error_name(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::LeaseHeld: return "org.vmlease.Error.LeaseHeld";
    case ErrorKind::LockspaceUnavailable: return "org.vmlease.Error.LockspaceUnavailable";
    case ErrorKind::InvalidDisk: return "org.vmlease.Error.InvalidDisk";
    case ErrorKind::NoSuchOwner: return "org.vmlease.Error.NoSuchOwner";
    case ErrorKind::NoSuchLease: return "org.vmlease.Error.NoSuchLease";
    case ErrorKind::SanlockFailure: return "org.vmlease.Error.SanlockFailure";
    case ErrorKind::ConfigInvalid: return "org.vmlease.Error.ConfigInvalid";
    case ErrorKind::Failed: return "org.vmlease.Error.Failed";
    case ErrorKind::InvalidArgs: return "org.freedesktop.DBus.Error.InvalidArgs";
    case ErrorKind::LimitsExceeded: return "org.freedesktop.DBus.Error.LimitsExceeded";
    case ErrorKind::NotSupported: return "org.freedesktop.DBus.Error.NotSupported";
    case ErrorKind::AccessDenied: return "org.freedesktop.DBus.Error.AccessDenied";
    case ErrorKind::LeaseStale: return "org.vmlease.Error.LeaseStale";
    case ErrorKind::InteractiveAuthorizationRequired:
        return "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";
    }
    return "org.vmlease.Error.Failed";
}

}  // namespace vmlease
