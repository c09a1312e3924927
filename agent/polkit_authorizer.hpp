// Asks polkit whether the sender of a D-Bus call may do what it asks, the
// way systemd-machined does: the caller's uid comes from the bus (a caller
// with the daemon's own uid is allowed without asking), then
// CheckAuthorization with a system-bus-name subject, the call's details and
// the interactive flag only when the caller's message allows interaction.
// Both steps are asynchronous; the event loop never waits for polkit.
#pragma once

#include "core/api_error.hpp"
#include "signal_gate.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace vmlease {

// Bounds on authorizations in flight, so callers cannot pile up work.
inline constexpr unsigned kMaxPendingAuthorizations = 512;
inline constexpr unsigned kMaxPendingAuthorizationsPerSender = 64;
// Bound on callers whose uid is remembered.
inline constexpr size_t kMaxCachedCallers = 4096;

struct AuthorizationRequest {
    std::string sender;  // unique bus name of the caller
    bool interactive = false;
    std::string action;
    std::map<std::string, std::string> details;
};

// Whether the caller's message carries ALLOW_INTERACTIVE_AUTHORIZATION.
// sdbus-c++ 1.2.0 has no accessor; the sd_bus_message is a protected member.
bool allows_interactive_authorization(const sdbus::Message &message);

class PolkitAuthorizer {
public:
    PolkitAuthorizer(sdbus::IConnection &bus, SignalGate &gate);
    ~PolkitAuthorizer();

    using Done = std::function<void(std::optional<ApiError>)>;
    // `done` gets nullopt when allowed, else AccessDenied,
    // InteractiveAuthorizationRequired or LimitsExceeded. It may run before
    // check() returns (limits; a caller with our uid already known) or later
    // from the event loop.
    void check(AuthorizationRequest request, Done done);

private:
    void ask_polkit(std::shared_ptr<AuthorizationRequest> request, Done done);
    void finish(const std::string &sender);
    void decide(std::shared_ptr<AuthorizationRequest> request, uint32_t uid, Done done);

    // Callers' uids by unique bus name. The bus never gives a unique name to
    // a second connection, so an entry is right until its name goes away
    // (NameOwnerChanged); this saves a bus round trip on every call after a
    // caller's first.
    std::map<std::string, uint32_t> uid_of_;
    std::unique_ptr<sdbus::IProxy> bus_driver_;
    std::unique_ptr<sdbus::IProxy> polkit_;
    std::map<std::string, unsigned> pending_per_sender_;
    unsigned pending_ = 0;
    // Set to false on destruction so late replies do nothing.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vmlease
