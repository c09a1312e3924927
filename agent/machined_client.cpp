#include "machined_client.hpp"

#include "log.hpp"

namespace vmlease {
namespace {

constexpr const char *kMachined = "org.freedesktop.machine1";
constexpr const char *kMachinedPath = "/org/freedesktop/machine1";
constexpr const char *kManagerIface = "org.freedesktop.machine1.Manager";
constexpr const char *kMachineIface = "org.freedesktop.machine1.Machine";

template <typename T>
T get_or(const std::map<std::string, sdbus::Variant> &props, const char *key, T fallback) {
    auto it = props.find(key);
    if (it == props.end())
        return fallback;
    try {
        return it->second.get<T>();
    } catch (const sdbus::Error &) {
        return fallback;
    }
}

// Reply callbacks run inside sdbus-c++, which ends the process on any
// exception that is not an sdbus::Error: whatever they feed into the
// daemon is logged here instead.
template <typename Body>
void without_throwing(const char *what, Body body) {
    try {
        body();
    } catch (const std::exception &e) {
        log_error(std::string(what) + " failed: " + e.what());
    }
}

}  // namespace

MachinedClient::MachinedClient(sdbus::IConnection &bus, SignalGate &gate, Handler &handler)
    : bus_(bus), gate_(gate), handler_(handler), manager_(sdbus::createProxy(bus, kMachined, kMachinedPath)) {}

MachinedClient::~MachinedClient() { *alive_ = false; }

void MachinedClient::start() {
    gate_.subscribe(*manager_, kMachined, kManagerIface, "MachineNew", [this](sdbus::Signal &signal) {
        std::string name;
        sdbus::ObjectPath path;
        signal >> name >> path;
        fetch(name, path, [] {});
    });
    gate_.subscribe(*manager_, kMachined, kManagerIface, "MachineRemoved", [this](sdbus::Signal &signal) {
        std::string name;
        sdbus::ObjectPath path;
        signal >> name >> path;
        confirm_gone(name);
    });
    manager_->finishRegistration();
    // The first listing follows the answer to who owns machined's name, so
    // that every signal dropped before it was known is covered by the listing.
    // Listing also starts machined if it is bus-activated.
    gate_.follow(kMachined, [this](const std::string &owner, bool initial) {
        if (initial) {
            list_machines();
            return;
        }
        if (owner.empty()) {
            log_warning("systemd-machined left the bus; machines stay protected until it is back");
            return;
        }
        log_info("systemd-machined is on the bus; listing its machines");
        said_absent_ = false;
        list_machines();
    });
}

void MachinedClient::forget(const std::string &name) {
    machine_proxies_.erase(name);
    run_waiting(name);
    handler_.machine_gone(name);
}

void MachinedClient::confirm_gone(const std::string &name) {
    manager_->callMethodAsync("GetMachine").onInterface(kManagerIface).withArguments(name).uponReplyInvoke(
        [this, name, alive = alive_](const sdbus::Error *error, sdbus::ObjectPath) {
            if (!*alive)
                return;
            if (error && error->getName() == "org.freedesktop.machine1.NoSuchMachine")
                return without_throwing("forgetting a machine", [&] { forget(name); });
            if (error)
                log_warning("systemd-machined announced that machine " + name +
                                " is gone but cannot confirm it (" + error->getMessage() +
                                "); its leases stay held until machined lists its machines again",
                            {{"OWNER", name}});
            else
                log_warning("systemd-machined announced that machine " + name +
                                " is gone but still has it; its leases stay held",
                            {{"OWNER", name}});
        });
}

void MachinedClient::list_machines() {
    manager_->callMethodAsync("ListMachines").onInterface(kManagerIface).uponReplyInvoke(
        [this, alive = alive_](const sdbus::Error *error,
                               std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> list) {
            if (!*alive)
                return;
            if (error) {
                if (!said_absent_)
                    log_info("systemd-machined is not available (" + error->getMessage() +
                             "); machines will be picked up when it appears");
                said_absent_ = true;
                without_throwing("handling the machine listing", [&] { handler_.machines_listed(false, {}); });
                return;
            }
            // Report the listing once every machine's properties are in.
            auto names = std::make_shared<std::vector<std::string>>();
            auto outstanding = std::make_shared<size_t>(list.size() + 1);
            auto done = [this, names, outstanding, alive = alive_] {
                if (*alive && --*outstanding == 0)
                    without_throwing("handling the machine listing", [&] { handler_.machines_listed(true, *names); });
            };
            for (const auto &m : list) {
                names->push_back(m.get<0>());
                fetch(m.get<0>(), m.get<3>(), done);
            }
            done();
        });
}

void MachinedClient::run_waiting(const std::string &name) {
    auto it = waiting_.find(name);
    if (it == waiting_.end())
        return;
    auto callbacks = std::move(it->second);
    waiting_.erase(it);
    for (auto &cb : callbacks)
        cb();
}

void MachinedClient::fetch(const std::string &name, const sdbus::ObjectPath &path, std::function<void()> then) {
    waiting_[name].push_back(std::move(then));
    auto &proxy = machine_proxies_[name];
    if (!proxy)
        proxy = sdbus::createProxy(bus_, kMachined, path);
    proxy->callMethodAsync("GetAll").onInterface("org.freedesktop.DBus.Properties").withArguments(std::string(kMachineIface))
        .uponReplyInvoke([this, name, alive = alive_](const sdbus::Error *error,
                                                            std::map<std::string, sdbus::Variant> props) {
            if (!*alive)
                return;
            if (error) {
                // Usually it went away before we could look at it (MachineRemoved follows).
                log_warning("cannot read machine " + name + ": " + error->getMessage(), {{"OWNER", name}});
            } else {
                MachineInfo info;
                info.name = name;
                info.machine_class = get_or<std::string>(props, "Class", "");
                info.unit = get_or<std::string>(props, "Unit", "");
                info.leader = get_or<uint32_t>(props, "Leader", 0);
                try {
                    handler_.machine_appeared(info);
                } catch (const std::exception &e) {
                    log_error("handling machine " + name + " failed: " + e.what(), {{"OWNER", name}});
                }
            }
            run_waiting(name);
        });
}

void MachinedClient::terminate(const std::string &name, Done done) {
    call(*manager_, "TerminateMachine", "cannot terminate machine " + name, name, std::move(done),
         [&](sdbus::AsyncMethodInvoker &m) { m.withArguments(name); });
}

void MachinedClient::kill(const std::string &name, int signal, Done done) {
    call(*manager_, "KillMachine", "cannot signal machine " + name, name, std::move(done),
         [&](sdbus::AsyncMethodInvoker &m) { m.withArguments(name, std::string("all"), signal); });
}

sdbus::IProxy &MachinedClient::systemd() {
    if (!systemd_)
        systemd_ = sdbus::createProxy(bus_, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    return *systemd_;
}

void MachinedClient::start_unit(const std::string &unit, Done done) {
    call(systemd(), "StartUnit", "cannot start " + unit, "", std::move(done),
         [&](sdbus::AsyncMethodInvoker &m) { m.withArguments(unit, std::string("replace")); },
         "org.freedesktop.systemd1.Manager");
}

void MachinedClient::freeze_unit(const std::string &unit, Done done) {
    call(systemd(), "FreezeUnit", "cannot freeze " + unit, "", std::move(done),
         [&](sdbus::AsyncMethodInvoker &m) { m.withArguments(unit); }, "org.freedesktop.systemd1.Manager");
}

void MachinedClient::thaw_unit(const std::string &unit, Done done) {
    call(systemd(), "ThawUnit", "cannot thaw " + unit, "", std::move(done),
         [&](sdbus::AsyncMethodInvoker &m) { m.withArguments(unit); }, "org.freedesktop.systemd1.Manager");
}

// One asynchronous call; its failure is logged here, once, and reported to `done`.
void MachinedClient::call(sdbus::IProxy &proxy, const char *method, const std::string &what, const std::string &owner,
                          Done done, const std::function<void(sdbus::AsyncMethodInvoker &)> &arguments,
                          const char *interface) {
    auto report = [what, owner, done](const std::string &error) {
        if (!error.empty())
            log_error(what + ": " + error, {{"OWNER", owner}});
        if (done)
            done(error);
    };
    try {
        // The invoker keeps a reference to the method name: it must outlive the call.
        const std::string name(method);
        sdbus::AsyncMethodInvoker invoker(proxy, name);
        invoker.onInterface(interface ? interface : kManagerIface);
        arguments(invoker);
        invoker.uponReplyInvoke([report, alive = alive_](const sdbus::Error *error) {
            if (*alive)
                report(error ? error->getMessage() : "");
        });
    } catch (const std::exception &e) {
        report(e.what());
    }
}

}  // namespace vmlease
