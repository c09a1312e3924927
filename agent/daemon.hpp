// vmleased as a library: the Daemon wires the sources (bus calls, signals,
// sanlock completions) to the lease registry and the registry's Steps to the
// effectors (sanlock workers, the D-Bus object). main() only parses options.
#pragma once

#include "completion_queue.hpp"
#include "config.hpp"
#include "core/lease_registry.hpp"
#include "core/machine_tracker.hpp"
#include "lockfailure_listener.hpp"
#include "machined_client.hpp"
#include "manager_object.hpp"
#include "sanlock_effector.hpp"
#include "udev_disk_namer.hpp"
#include "udev_monitor.hpp"

#include <systemd/sd-event.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace vmlease {

struct DaemonOptions {
    std::string config_path = "/etc/vmlease/vmlease.yaml";
    // Registered sanlock connections; 0: twice sanlock's worker threads
    // (at least 4, at most 64), so that its workers never wait for us.
    unsigned sanlock_connections = 0;
};

// The runtime directory: $RUNTIME_DIRECTORY as systemd sets it, else /run/vmlease.
std::string runtime_directory();

// Settings for the sanlock layer derived from a configuration; throws
// ConfigError if a user or group does not exist on this host.
SanlockSettings sanlock_settings_for(const Config &config);

class Daemon final : public Requests, public StateView, private MachinedClient::Handler {
public:
    // Loads the configuration; throws ConfigError on a bad file.
    explicit Daemon(DaemonOptions options);
    ~Daemon() override;

    // Startup (connect, serve, join the lockspace, own the name, READY=1),
    // then the event loop until SIGTERM/SIGINT. Returns the exit status.
    int run();

    // Requests
    void acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                 LeaseMode mode, const std::vector<std::string> &aliases) override;
    void release(RequestId id, const std::string &owner, const std::string &resource) override;
    void release_owner(RequestId id, const std::string &owner) override;
    void resume(RequestId id, const std::string &owner) override;
    void reserve(RequestId id, const std::string &owner, const std::vector<DiskRule> &disks,
                 uint32_t grace_seconds) override;
    void inspect(RequestId id, const std::string &resource) override;
    void clean_up(RequestId id, bool dry_run) override;
    void reload(RequestId id) override;
    // StateView
    std::vector<std::string> warnings() const override;
    const LeaseRegistry &registry() const override { return registry_; }
    const MachineTracker &tracker() const override { return tracker_; }
    const SanlockSettings &sanlock_settings() const override { return settings_; }

private:
    // MachinedClient::Handler
    void machine_appeared(const MachineInfo &info) override;
    void machine_gone(const std::string &name) override;
    void machines_listed(bool ok, const std::vector<std::string> &names) override;

    void scan_machine(const std::string &name);
    // Machines that just appeared are scanned densely (daemon.cpp, kYoungUsec).
    void arm_dense_scan();
    std::map<std::string, std::pair<uint32_t, uint64_t>> young_;  // name -> (leader, until, CLOCK_MONOTONIC µs)
    std::string dense_last_;
    bool dense_armed_ = false;
    // `fn` runs once on the loop after `usec`; the loop owns the timer.
    void after(uint64_t usec, std::function<void()> fn);
    void freeze(const std::string &machine, const std::string &unit);
    void thaw(const std::string &machine, const std::string &unit);
    void device_changed(const DeviceEvent &event);
    static int on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata);
    void arm_grace_timer();
    static int on_grace_timer(sd_event_source *s, uint64_t usec, void *userdata);

    // SIGHUP and Reload: the new configuration, or why the old one stays.
    std::optional<ApiError> reload_config();
    void apply(Step step);
    void carry_out(const SanlockEffect &effect);
    void start_join();
    void join_finished(SanlockEffector::JoinOutcome out);
    // vmlease-holder goes once no lease of this host is left in the failed
    // lockspace: its sentinel alone would keep the lockspace from going.
    void retire_holder_if_done();
    // vmlease-holder is watched (pidfd): if it dies while the lockspace is
    // joined, a new one is started and the journal says so.
    void holder_started(const HolderOutcome &h);
    static int on_holder_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    // Machines still there some seconds after their lock-failure action:
    // the journal says which and why their leases stay.
    static int on_stop_check_timer(sd_event_source *s, uint64_t usec, void *userdata);
    void schedule_rejoin();
    void on_lock_failure_signal(pid_t sender);
    // sanlock says the lockspace failed (its SIGTERM, or the killpath helper).
    void lock_failure(const std::string &how);
    void carry_out(const MachineEffect &effect, const LockFailureChange *failure);
    void write_lockfailure_plan();
    uint64_t leader_start_time(const std::string &machine, uint32_t leader);
    void notify_status();
    // $RUNTIME_DIRECTORY/leases: who owns what sanlock holds for us.
    void load_saved_state();
    // Returns what went wrong, or "" once the file is written.
    std::string save_state();
    void save_state_soon();
    static int on_save_state(sd_event_source *s, void *userdata);
    // Once the lockspace is joined and machined has answered: take back,
    // or give back, what the agent held before it (re)started.
    void maybe_reconcile();
    Step reconcile();
    void watch_sanlock(int fd);
    void sanlock_gone();
    static int on_sanlock_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata);

    static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata);
    static int on_completions(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    static int on_rejoin_timer(sd_event_source *s, uint64_t usec, void *userdata);

    DaemonOptions options_;
    Config config_;
    SanlockSettings settings_;
    std::string sanlock_run_dir_;
    UdevDiskNamer namer_;
    LeaseRegistry registry_;
    MachineTracker tracker_;
    // Machines (name/leader) whose open files are being scanned.
    std::set<std::string> scanning_;
    // Machines stopped with SIGSTOP because their unit could not be frozen.
    std::set<std::string> stopped_instead_;
    static constexpr size_t kMaxScans = 256;

    sd_event *event_ = nullptr;
    CompletionQueue completions_;
    std::unique_ptr<SanlockEffector> effector_;
    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<class BusEventSource> bus_source_;
    std::unique_ptr<SignalGate> signals_;
    std::unique_ptr<DiskResolver> resolver_;
    std::unique_ptr<ManagerObject> manager_;
    std::unique_ptr<MachinedClient> machined_;
    std::unique_ptr<UdevMonitor> udev_;
    std::unique_ptr<LockFailureListener> lockfailure_listener_;
    bool after_failure_ = false;  // the next join must not take the failed lockspace for a joined one
    std::string written_plan_;
    // What the state file said at start, until it is reconciled.
    std::optional<SavedState> to_restore_;
    bool listing_done_ = false;    // machined answered (or could not be asked)
    bool machines_known_ = false;  // ... and it did answer
    sd_event_source *sanlock_watch_ = nullptr;
    sd_event_source *save_state_source_ = nullptr;  // deferred save_state()
    bool state_unwritable_ = false;
    sd_event_source *scan_timer_ = nullptr;
    // Reservations waiting for their machine: one timer, armed for the earliest deadline.
    sd_event_source *grace_timer_ = nullptr;
    std::map<std::string, uint64_t> grace_deadlines_;  // machine -> CLOCK_MONOTONIC usec
    bool ready_ = false;
    std::vector<sd_event_source *> sources_;
    sd_event_source *rejoin_timer_ = nullptr;
    unsigned join_failures_ = 0;
    uint64_t last_lock_failure_log_ = 0;
    std::string last_join_error_;
    std::string logged_join_error_;  // the last one the journal has
    bool workers_advice_logged_ = false;  // sanlock's worker threads limited us, and the journal said so
    std::vector<std::string> warnings_;
    bool holder_running_ = false;
    pid_t holder_pid_ = 0;
    std::map<std::string, std::pair<uint32_t, uint64_t>> leader_start_;  // machine -> leader, its start time
    sd_event_source *holder_watch_ = nullptr;
    uint64_t holder_since_ = 0;        // CLOCK_MONOTONIC usec the holder started or was found
    unsigned holder_quick_exits_ = 0;  // in a row, each within 5 s of its start
    std::string holder_problem_;  // why no vmlease-holder runs while joined
    // sanlock refuses new acquires on connections it targeted in a failure;
    // they are replaced at the rejoin, not before: until then they still
    // hold the leases of machines that have not gone yet.
    bool reconnect_on_join_ = false;
    sd_event_source *stop_check_timer_ = nullptr;
    std::set<std::string> stopping_;
    std::set<std::string> acted_by_helper_;  // in this failure (lockfailure-acted)
    // The helper's reports wait for machined to carry out the actions.
    void lock_failure_action_done(const LockFailureChange &f, bool ok);
    size_t failure_actions_pending_ = 0;
    bool failure_actions_ok_ = true;
    // This agent has applied the actions of the current failure (so a
    // report may be answered "ok"): lock_failure(), or the reconcile of a
    // lockspace found failing at start.
    bool failure_acted_ = false;
    std::vector<std::function<void(bool)>> failure_replies_;  // machines whose lock-failure action should end them
};

}  // namespace vmlease
