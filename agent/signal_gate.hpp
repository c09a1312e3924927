// Where signals from other services enter vmleased, and the one place their
// sender is checked.
//
// On dbus-daemon any connection may send a signal straight to vmleased
// (a unicast signal, with vmleased's unique name as destination) claiming to
// be org.freedesktop.machine1.Manager.MachineRemoved; sd-bus's match on
// sender='org.freedesktop.machine1' cannot refuse it, since only the bus
// knows which unique name owns a well-known name. So every signal the agent
// acts on comes through here: it is handed on only if its sender is the
// unique name that owns the service right now, as the bus driver itself
// said (GetNameOwner, then NameOwnerChanged whose sender is the driver,
// which no client can forge). Everything else is dropped and logged.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vmlease {

inline constexpr const char *kBusDriver = "org.freedesktop.DBus";

class SignalGate {
public:
    explicit SignalGate(sdbus::IConnection &bus);
    ~SignalGate();
    SignalGate(const SignalGate &) = delete;
    SignalGate &operator=(const SignalGate &) = delete;

    using Handler = std::function<void(sdbus::Signal &signal)>;
    // Run `handler` for signal `interface`.`member` arriving on `proxy`, but
    // only when it was sent by the current owner of `service`. The caller
    // calls proxy.finishRegistration() once all its handlers are in.
    void subscribe(sdbus::IProxy &proxy, const std::string &service, const std::string &interface,
                   const std::string &member, Handler handler);

    // Follow who owns `service`. `changed(owner, initial)` runs once with the
    // answer to GetNameOwner (owner "" if nobody owns it, or it could not be
    // asked) and again each time the bus driver says the owner changed
    // ("" when it left the bus).
    using OwnerChanged = std::function<void(const std::string &owner, bool initial)>;
    void follow(const std::string &service, OwnerChanged changed);

    // NameOwnerChanged, as sent by the bus driver and nobody else.
    using NameOwnerChanged =
        std::function<void(const std::string &name, const std::string &old_owner, const std::string &new_owner)>;
    void on_name_owner_changed(NameOwnerChanged listener);

    // Whether `message` was sent by the current owner of `service`.
    bool sent_by(const sdbus::Message &message, const std::string &service) const;

private:
    void name_owner_changed(const std::string &name, const std::string &old_owner, const std::string &new_owner);
    void reject(const sdbus::Message &message, const std::string &service);

    std::unique_ptr<sdbus::IProxy> driver_;
    // service -> its owner's unique name; absent or "" while unknown or unowned.
    std::map<std::string, std::string> owners_;
    std::map<std::string, std::vector<OwnerChanged>> followers_;
    std::vector<NameOwnerChanged> listeners_;
    // Rejections are logged, at most one a second, so a flood cannot flood the journal.
    uint64_t last_rejection_log_ = 0;
    uint64_t rejections_unlogged_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vmlease
