// A client of org.vmlease.Manager built from the same XML as the daemon (the
// generated proxy), on its own connection to one host's bus. It records
// every signal it sees so tests can wait for them.
#pragma once

#include "org_vmlease_Manager_proxy.h"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vmtest {

struct Event {
    std::string name;               // LeaseAcquired, LeaseReleased, InterfacesAdded, PropertiesChanged, ...
    std::vector<std::string> args;  // string forms of the arguments
    std::map<std::string, std::string> values;  // PropertiesChanged: each changed property's value as text
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
};

class ManagerClient final
    : public sdbus::ProxyInterfaces<org::vmlease::Manager_proxy, sdbus::Properties_proxy, sdbus::ObjectManager_proxy> {
public:
    explicit ManagerClient(const std::string &bus_address)
        : ProxyInterfaces(sdbus::createSessionBusConnectionWithAddress(bus_address), "org.vmlease", "/org/vmlease") {
        registerProxy();
    }
    ~ManagerClient() { unregisterProxy(); }

    std::vector<Event> events() {
        std::lock_guard lock(mutex_);
        return events_;
    }
    void clear_events() {
        std::lock_guard lock(mutex_);
        events_.clear();
    }
    // Wait until an event named `name` whose arguments start with `prefix` has arrived.
    bool wait_for(const std::string &name, const std::vector<std::string> &prefix,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        return wait_event(name, prefix, timeout).has_value();
    }
    std::optional<Event> wait_event(const std::string &name, const std::vector<std::string> &prefix,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        std::unique_lock lock(mutex_);
        std::optional<Event> found;
        cv_.wait_for(lock, timeout, [&] {
            for (const auto &e : events_) {
                if (e.name == name && e.args.size() >= prefix.size() &&
                    std::equal(prefix.begin(), prefix.end(), e.args.begin())) {
                    found = e;
                    return true;
                }
            }
            return false;
        });
        return found;
    }
    // The alias paths of a lease object (org.vmlease.Lease.Aliases).
    std::vector<std::string> lease_aliases(const sdbus::ObjectPath &lease) {
        auto objects = GetManagedObjects();
        std::vector<std::string> out;
        auto it = objects.find(lease);
        if (it == objects.end())
            return out;
        for (const auto &a : it->second.at("org.vmlease.Lease")
                                 .at("Aliases")
                                 .get<std::vector<sdbus::Struct<std::string, std::string>>>())
            out.push_back(a.get<0>());
        return out;
    }
    // Wait until a PropertiesChanged signal announces `value` for property `name`
    // (not merely that the property now reads so: the signal itself).
    bool wait_changed(const std::string &name, const std::string &value,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] {
            for (const auto &e : events_) {
                auto v = e.values.find(name);
                if (e.name == "PropertiesChanged" && v != e.values.end() && v->second == value)
                    return true;
            }
            return false;
        });
    }
    // Wait until a property of org.vmlease.Manager has a value (re-read on every PropertiesChanged).
    bool wait_property(const std::string &name, const std::string &value,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
        auto current = [&] { return Get("org.vmlease.Manager", name).get<std::string>(); };
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (current() == value)
                return true;
            std::unique_lock lock(mutex_);
            cv_.wait_for(lock, std::chrono::milliseconds(250));
        }
        return current() == value;
    }

private:
    void record(std::string name, std::vector<std::string> args, std::map<std::string, std::string> values = {}) {
        {
            std::lock_guard lock(mutex_);
            events_.push_back({std::move(name), std::move(args), std::move(values)});
        }
        cv_.notify_all();
    }
    void onLeaseAcquired(const std::string &owner, const std::string &disk, const sdbus::ObjectPath &lease) override {
        record("LeaseAcquired", {owner, disk, lease});
    }
    void onLeaseReleased(const std::string &owner, const std::string &disk, const sdbus::ObjectPath &lease) override {
        record("LeaseReleased", {owner, disk, lease});
    }
    void onLeaseConflict(const std::string &owner, const std::string &disk, const uint32_t &holder) override {
        record("LeaseConflict", {owner, disk, std::to_string(holder)});
    }
    void onLockFailure(const std::string &owner, const std::string &lockspace, const std::string &action) override {
        record("LockFailure", {owner, lockspace, action});
    }
    void onMachineUnprotected(const std::string &machine, const std::string &disk, const std::string &reason) override {
        record("MachineUnprotected", {machine, disk, reason});
    }
    void onMachineStale(const std::string &machine, const std::string &disk, const uint32_t &holder) override {
        record("MachineStale", {machine, disk, std::to_string(holder)});
    }
    void onMachineResumed(const std::string &machine, const std::string &reason) override {
        record("MachineResumed", {machine, reason});
    }
    void onDeviceAdded(const std::string &path) override { record("DeviceAdded", {path}); }
    void onDeviceRemoved(const std::string &path) override { record("DeviceRemoved", {path}); }
    void onPropertiesChanged(const std::string &interface, const std::map<std::string, sdbus::Variant> &changed,
                             const std::vector<std::string> &invalidated) override {
        std::vector<std::string> args{interface};
        std::map<std::string, std::string> values;
        for (const auto &[k, v] : changed) {
            args.push_back(k);
            const std::string type = v.peekValueType();
            if (type == "s")
                values[k] = v.get<std::string>();
            else if (type == "u")
                values[k] = std::to_string(v.get<uint32_t>());
            else if (type == "t")
                values[k] = std::to_string(v.get<uint64_t>());
            else if (type == "b")
                values[k] = v.get<bool>() ? "true" : "false";
            else if (type == "as")
                for (const auto &item : v.get<std::vector<std::string>>())
                    values[k] += item + "\n";
        }
        for (const auto &k : invalidated)
            args.push_back(k);
        record("PropertiesChanged", args, values);
    }
    void onInterfacesAdded(const sdbus::ObjectPath &path,
                           const std::map<std::string, std::map<std::string, sdbus::Variant>> &interfaces) override {
        std::vector<std::string> args{path};
        for (const auto &[i, _] : interfaces)
            args.push_back(i);
        record("InterfacesAdded", args);
    }
    void onInterfacesRemoved(const sdbus::ObjectPath &path, const std::vector<std::string> &interfaces) override {
        std::vector<std::string> args{path};
        args.insert(args.end(), interfaces.begin(), interfaces.end());
        record("InterfacesRemoved", args);
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Event> events_;
};

}  // namespace vmtest
