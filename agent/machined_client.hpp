// Where systemd-machined's events enter vmleased, and where machine actions
// (TerminateMachine, KillMachine) leave it. Subscribes to MachineNew and
// MachineRemoved before listing machines, so none is missed between the two;
// follows machined leaving and (re)appearing on the bus through
// NameOwnerChanged. Every call is asynchronous.
//
// Signals count only when machined's own connection sent them (SignalGate),
// and a machine is reported gone only once machined confirms it no longer
// has it (GetMachine fails with NoSuchMachine) or leaves it out of a
// listing: a signal alone never releases a lease.
#pragma once

#include "core/machine_tracker.hpp"
#include "signal_gate.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vmlease {

class MachinedClient {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        virtual void machine_appeared(const MachineInfo &info) = 0;
        virtual void machine_gone(const std::string &name) = 0;
        // A full listing finished: `names` is every machine machined has now.
        // `ok` is false when machined could not be asked (not running).
        virtual void machines_listed(bool ok, const std::vector<std::string> &names) = 0;
    };

    MachinedClient(sdbus::IConnection &bus, SignalGate &gate, Handler &handler);
    ~MachinedClient();

    // Subscribe, then list. Call once, after the handler is ready for events.
    void start();
    // `done` (optional) hears the outcome: "" on success, else the error.
    using Done = std::function<void(const std::string &error)>;
    void terminate(const std::string &name, Done done = {});
    void kill(const std::string &name, int signal, Done done = {});
    // Through systemd, not machined: on_lockfailure restart of a service.
    void start_unit(const std::string &unit, Done done = {});
    // systemd's cgroup freezer on the machine's unit (on_conflict and
    // on_unprotected pause): a stray SIGCONT cannot undo it.
    void freeze_unit(const std::string &unit, Done done = {});
    void thaw_unit(const std::string &unit, Done done = {});

private:
    void list_machines();
    void fetch(const std::string &name, const sdbus::ObjectPath &path, std::function<void()> then);
    // MachineRemoved said `name` is gone: ask machined whether it really is.
    void confirm_gone(const std::string &name);
    void forget(const std::string &name);

    sdbus::IConnection &bus_;
    SignalGate &gate_;
    Handler &handler_;
    std::unique_ptr<sdbus::IProxy> manager_;
    std::unique_ptr<sdbus::IProxy> systemd_;
    sdbus::IProxy &systemd();
    void call(sdbus::IProxy &proxy, const char *method, const std::string &what, const std::string &owner, Done done,
              const std::function<void(sdbus::AsyncMethodInvoker &)> &arguments, const char *interface = nullptr);
    std::map<std::string, std::unique_ptr<sdbus::IProxy>> machine_proxies_;
    // Callbacks waiting for a machine's properties; run when they arrive or
    // when the machine goes away first (dropping its proxy drops the call).
    std::map<std::string, std::vector<std::function<void()>>> waiting_;
    void run_waiting(const std::string &name);
    bool said_absent_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vmlease
