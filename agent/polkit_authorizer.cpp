#include "polkit_authorizer.hpp"

#include "log.hpp"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <chrono>

namespace vmlease {
namespace {

// Reaches sdbus::Message's protected sd_bus_message through a member pointer
// formed inside a derived class, which the language allows.
struct MessageInternals : sdbus::Message {
    static void *sdbus::Message::*raw() { return &MessageInternals::msg_; }
};

constexpr uint32_t kPolkitAllowUserInteraction = 1;

ApiError denied(const std::string &action, const std::string &why) {
    return {ErrorKind::AccessDenied, "not authorized for " + action + (why.empty() ? "" : ": " + why)};
}

}  // namespace

bool allows_interactive_authorization(const sdbus::Message &message) {
    auto *m = static_cast<sd_bus_message *>(message.*MessageInternals::raw());
    return m && sd_bus_message_get_allow_interactive_authorization(m) > 0;
}

PolkitAuthorizer::PolkitAuthorizer(sdbus::IConnection &bus, SignalGate &gate)
    : bus_driver_(sdbus::createProxy(bus, kBusDriver, "/org/freedesktop/DBus")),
      polkit_(sdbus::createProxy(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")) {
    gate.on_name_owner_changed([this](const std::string &name, const std::string &, const std::string &new_owner) {
        if (new_owner.empty())
            uid_of_.erase(name);
    });
}

PolkitAuthorizer::~PolkitAuthorizer() { *alive_ = false; }

void PolkitAuthorizer::finish(const std::string &sender) {
    pending_--;
    if (--pending_per_sender_[sender] == 0)
        pending_per_sender_.erase(sender);
}

void PolkitAuthorizer::check(AuthorizationRequest request, Done done) {
    if (pending_ >= kMaxPendingAuthorizations)
        return done(ApiError{ErrorKind::LimitsExceeded, "too many authorizations in progress; try again later"});
    if (pending_per_sender_[request.sender] >= kMaxPendingAuthorizationsPerSender)
        return done(ApiError{ErrorKind::LimitsExceeded,
                             "this caller already has " + std::to_string(kMaxPendingAuthorizationsPerSender) +
                                 " authorizations in progress"});
    auto req = std::make_shared<AuthorizationRequest>(std::move(request));
    if (auto known = uid_of_.find(req->sender); known != uid_of_.end()) {
        pending_++;
        pending_per_sender_[req->sender]++;
        return decide(req, known->second, std::move(done));
    }
    // Counted once sent, so a call that cannot be sent leaks no slot.
    bus_driver_->callMethodAsync("GetConnectionUnixUser")
        .onInterface("org.freedesktop.DBus")
        .withArguments(req->sender)
        .uponReplyInvoke([this, alive = alive_, req, done](const sdbus::Error *error, uint32_t uid) {
            if (!*alive)
                return;
            if (error) {
                finish(req->sender);
                return done(denied(req->action, "cannot identify the caller: " + error->getMessage()));
            }
            if (uid_of_.size() >= kMaxCachedCallers)
                uid_of_.clear();
            uid_of_[req->sender] = uid;
            decide(req, uid, done);
        });
    pending_++;
    pending_per_sender_[req->sender]++;
}

void PolkitAuthorizer::decide(std::shared_ptr<AuthorizationRequest> req, uint32_t uid, Done done) {
    if (uid == geteuid()) {  // root asking root, as systemd does
        finish(req->sender);
        return done(std::nullopt);
    }
    ask_polkit(req, std::move(done));
}

void PolkitAuthorizer::ask_polkit(std::shared_ptr<AuthorizationRequest> req, Done done) {
    sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>> subject{
        "system-bus-name", std::map<std::string, sdbus::Variant>{{"name", sdbus::Variant(req->sender)}}};
    uint32_t flags = req->interactive ? kPolkitAllowUserInteraction : 0;
    // An interactive check waits for a person to type a password.
    auto timeout = req->interactive ? std::chrono::minutes(5) : std::chrono::minutes(1);
    try {
        polkit_->callMethodAsync("CheckAuthorization")
            .onInterface("org.freedesktop.PolicyKit1.Authority")
            .withTimeout(timeout)
            .withArguments(subject, req->action, req->details, flags, std::string())
            .uponReplyInvoke([this, alive = alive_, req, done](const sdbus::Error *error,
                                                              sdbus::Struct<bool, bool, std::map<std::string, std::string>>
                                                                  result) {
                if (!*alive)
                    return;
                finish(req->sender);
                if (error) {
                    log_warning("polkit could not be asked about " + req->action + ": " + error->getMessage());
                    return done(denied(req->action, "polkit is not available"));
                }
                bool authorized = result.get<0>(), challenge = result.get<1>();
                if (authorized)
                    return done(std::nullopt);
                if (challenge && !req->interactive)
                    return done(ApiError{ErrorKind::InteractiveAuthorizationRequired,
                                         "authentication is required for " + req->action +
                                             "; call again allowing interactive authorization"});
                done(denied(req->action, ""));
            });
    } catch (const sdbus::Error &e) {
        finish(req->sender);
        done(denied(req->action, "polkit is not available: " + e.getMessage()));
    }
}

}  // namespace vmlease
