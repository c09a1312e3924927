#include "signal_gate.hpp"

#include "log.hpp"

#include <time.h>

namespace vmlease {
namespace {

uint64_t now_seconds() {
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec);
}

}  // namespace

SignalGate::SignalGate(sdbus::IConnection &bus)
    : driver_(sdbus::createProxy(bus, kBusDriver, "/org/freedesktop/DBus")) {
    // The driver's own messages carry its name as sender; no client can use it.
    owners_[kBusDriver] = kBusDriver;
    subscribe(*driver_, kBusDriver, "org.freedesktop.DBus", "NameOwnerChanged", [this](sdbus::Signal &signal) {
        std::string name, old_owner, new_owner;
        signal >> name >> old_owner >> new_owner;
        name_owner_changed(name, old_owner, new_owner);
    });
    driver_->finishRegistration();
}

SignalGate::~SignalGate() { *alive_ = false; }

void SignalGate::subscribe(sdbus::IProxy &proxy, const std::string &service, const std::string &interface,
                           const std::string &member, Handler handler) {
    proxy.registerSignalHandler(interface, member, [this, service, member, handler = std::move(handler)](
                                                       sdbus::Signal &signal) {
        // sdbus-c++ 1.2.0 ends the process on an exception from a handler.
        try {
            if (!sent_by(signal, service))
                return reject(signal, service);
            handler(signal);
        } catch (const std::exception &e) {
            log_error("handling signal " + member + " from " + service + " failed: " + e.what());
        }
    });
}

void SignalGate::follow(const std::string &service, OwnerChanged changed) {
    followers_[service].push_back(changed);
    driver_->callMethodAsync("GetNameOwner")
        .onInterface("org.freedesktop.DBus")
        .withArguments(service)
        .uponReplyInvoke([this, alive = alive_, service, changed](const sdbus::Error *error, std::string owner) {
            if (!*alive)
                return;
            try {
                // A NameOwnerChanged that came first is newer than this answer.
                auto known = owners_.find(service);
                if (known == owners_.end())
                    owners_[service] = error ? "" : owner;
                changed(owners_[service], true);
            } catch (const std::exception &e) {
                log_error("following " + service + " failed: " + e.what());
            }
        });
}

void SignalGate::on_name_owner_changed(NameOwnerChanged listener) { listeners_.push_back(std::move(listener)); }

bool SignalGate::sent_by(const sdbus::Message &message, const std::string &service) const {
    auto it = owners_.find(service);
    if (it == owners_.end() || it->second.empty())
        return false;
    return message.getSender() == it->second;
}

void SignalGate::name_owner_changed(const std::string &name, const std::string &old_owner,
                                    const std::string &new_owner) {
    auto followed = followers_.find(name);
    if (followed != followers_.end()) {
        owners_[name] = new_owner;
        for (const auto &changed : followed->second)
            changed(new_owner, false);
    }
    for (const auto &listener : listeners_)
        listener(name, old_owner, new_owner);
}

void SignalGate::reject(const sdbus::Message &message, const std::string &service) {
    uint64_t now = now_seconds();
    if (now == last_rejection_log_) {
        rejections_unlogged_++;
        return;
    }
    auto owner = owners_.find(service);
    std::string sender = message.getSender();
    std::string suppressed = rejections_unlogged_ ? " (and " + std::to_string(rejections_unlogged_) +
                                                        " more in the last second)"
                                                  : "";
    log_message(LOG_WARNING, "ignoring signal " + message.getInterfaceName() + "." + message.getMemberName() + " from " +
                    (sender.empty() ? std::string("an unknown sender") : sender) + ": it does not own " + service +
                    (owner == owners_.end() || owner->second.empty() ? std::string(" (nobody does now)")
                                                                     : " (" + owner->second + " does)") +
                    suppressed,
                {{"SENDER", sender}, {"SERVICE", service}}, message_id::kSignalRejected);
    last_rejection_log_ = now;
    rejections_unlogged_ = 0;
}

}  // namespace vmlease
