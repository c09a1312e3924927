// vmleased's start-up and wiring: the event loop and its sources, the bus,
// the effectors, the order they come up in (see run()); the requests the
// D-Bus layer hands over, each turned into a core call whose Step is
// applied (daemon_apply.cpp). Machines: daemon_machines.cpp; the lockspace
// and lock failures: daemon_lockspace.cpp; restarts: daemon_restart.cpp.
#include "daemon.hpp"
#include "daemon_internal.hpp"

#include "bus_event_source.hpp"
#include "journal.hpp"
#include "lockfailure_plan.hpp"
#include "log.hpp"
#include "sanlock_options.hpp"
#include "signal_origin.hpp"
#include "version.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <string>

namespace vmlease {
namespace {

std::string env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    // systemd may pass several directories separated by ':'; the first is ours.
    if (!v || !*v)
        return fallback;
    std::string s(v);
    return s.substr(0, s.find(':'));
}

}  // namespace

using namespace daemon_internal;

std::string runtime_directory() { return env_or("RUNTIME_DIRECTORY", "/run/vmlease"); }

std::vector<std::string> Daemon::warnings() const {
    std::vector<std::string> w = warnings_;
    if (!holder_problem_.empty())
        w.push_back(holder_problem_);
    std::string unprotected;
    size_t n = 0;
    for (const auto &[name, m] : tracker_.machines())
        if (!m.reserved && !machine_protected(m)) {
            unprotected += (n++ ? ", " : "") + name;
        }
    if (n)
        w.push_back(std::to_string(n) + " machine(s) not protected by a lease: " + unprotected +
                    " (vmleasectl status says why)");
    if (effector_ && effector_->acquires_waiting_for_workers() > 0)
        w.push_back(sanlock_workers_advice(effector_->acquires_waiting_for_workers(), effector_->sanlock_workers()));
    return w;
}

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)), config_(load_config(options_.config_path)), settings_(sanlock_settings_for(config_)),
      sanlock_run_dir_(sanlock_run_dir_from_env()), registry_(config_.host_id), tracker_(registry_, config_, namer_, realtime_usec) {}

Daemon::~Daemon() {
    // Leases stay held (they are PERSISTENT in sanlock); only our objects go.
    udev_.reset();
    lockfailure_listener_.reset();
    machined_.reset();
    manager_.reset();
    resolver_.reset();
    signals_.reset();
    bus_source_.reset();
    bus_.reset();
    effector_.reset();
    sd_event_source_disable_unref(sanlock_watch_);  // closes the watch fd
    sd_event_source_disable_unref(save_state_source_);
    sd_event_source_disable_unref(rejoin_timer_);
    sd_event_source_disable_unref(scan_timer_);
    sd_event_source_disable_unref(grace_timer_);
    sd_event_source_disable_unref(stop_check_timer_);
    sd_event_source_disable_unref(holder_watch_);
    for (auto *s : sources_)
        sd_event_source_disable_unref(s);
    sd_event_unref(event_);
}

int Daemon::run() {
    check(sd_event_default(&event_), "cannot create the event loop");
    // Feeds WatchdogSec= from the loop itself: a hung loop gets us restarted
    // (harmless: leases are persistent and re-adopted at start).
    check(sd_event_set_watchdog(event_, true), "cannot set up the service watchdog");

    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&mask, sig);
    check(-pthread_sigmask(SIG_BLOCK, &mask, nullptr), "cannot block signals");
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        sd_event_source *s = nullptr;
        check(sd_event_add_signal(event_, &s, sig, on_signal, this), "cannot watch signals");
        sources_.push_back(s);
    }
    // One timer for rejoining the lockspace, armed when a join fails.
    check(sd_event_add_time(event_, &rejoin_timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_rejoin_timer, this),
          "cannot set up the rejoin timer");
    sd_event_source_set_enabled(rejoin_timer_, SD_EVENT_OFF);
    check(sd_event_add_time(event_, &grace_timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_grace_timer, this),
          "cannot set up the reservation timer");
    sd_event_source_set_enabled(grace_timer_, SD_EVENT_OFF);
    check(sd_event_add_time(event_, &stop_check_timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_stop_check_timer, this),
          "cannot set up the lock-failure timer");
    sd_event_source_set_enabled(stop_check_timer_, SD_EVENT_OFF);
    check(sd_event_add_defer(event_, &save_state_source_, on_save_state, this), "cannot set up state saving");
    sd_event_source_set_enabled(save_state_source_, SD_EVENT_OFF);
    sd_event_source *cq = nullptr;
    check(sd_event_add_io(event_, &cq, completions_.fd(), EPOLLIN, on_completions, this), "cannot watch completions");
    sources_.push_back(cq);

    // connect -> serve -> start joining -> own the name -> READY
    bus_ = sdbus::createSystemBusConnection();
    bus_source_ = std::make_unique<BusEventSource>(event_, *bus_);
    const SanlockOptions sanlock_options = read_sanlock_options(sanlock_run_dir_);
    const unsigned workers = sanlock_options.worker_threads;
    const unsigned connections =
        options_.sanlock_connections ? options_.sanlock_connections : std::clamp(2 * workers, 4u, 64u);
    effector_ = std::make_unique<SanlockEffector>(settings_, completions_, connections, workers);
    log_info("sanlock has " + std::to_string(workers) + " worker threads (max_worker_threads): up to " +
             std::to_string(workers) + " leases are taken at once, over " + std::to_string(connections) +
             " connections" +
             (workers < 32 ? "; starting many machines at once is faster with max_worker_threads = 32 in "
                             "/etc/sanlock/sanlock.conf"
                           : ""));
    signals_ = std::make_unique<SignalGate>(*bus_);
    resolver_ = std::make_unique<DiskResolver>(event_, completions_);
    manager_ = std::make_unique<ManagerObject>(*bus_, *signals_, *this, *this, *resolver_, VMLEASE_VERSION);
    try {
        lockfailure_listener_ = std::make_unique<LockFailureListener>(
            event_, runtime_directory() + "/" + kLockFailureSocket, [this](LockFailureListener::Reply reply) {
                // Handled here only once the leases are this agent's to act
                // on; until then (starting, reconciling) the helper applies
                // the plan itself. "ok" once machined has carried out every
                // action: if it fails or hangs, the helper acts directly.
                bool can = failure_acted_ || (registry_.lockspace_state() == LockspaceState::Joined && !to_restore_);
                lock_failure("vmlease-lockfailure reported");
                if (!can)
                    reply(false);
                else if (failure_actions_pending_ == 0)
                    reply(failure_actions_ok_);
                else
                    failure_replies_.push_back(std::move(reply));
            });
    } catch (const std::exception &e) {
        // The helper then acts on its own from the plan file.
        log_error(std::string("cannot hear the lock-failure helper: ") + e.what());
    }
    load_saved_state();
    write_lockfailure_plan();
    if (auto warning = sanlock_watchdog_warning(sanlock_options)) {
        warnings_.push_back(*warning);
        log_message(LOG_WARNING, *warning, {}, message_id::kWatchdogMissing);
    }
    effector_->remove_stale_temporaries([dir = settings_.lease_dir](size_t removed) {
        if (removed)
            log_notice("removed " + std::to_string(removed) + " temporary file(s) of this host left in " + dir +
                       " by an earlier crash");
    });
    start_join();
    bus_->requestName(kBusName);
    log_info("vmleased " + std::string(VMLEASE_VERSION) + " serving as host " + std::to_string(settings_.host_id) +
             " on lockspace " + settings_.lockspace + " in " + settings_.lease_dir);

    // Block devices: subscribe, then replay the present ones as if added.
    try {
        udev_ = std::make_unique<UdevMonitor>(event_, [this](const DeviceEvent &e) { device_changed(e); });
        udev_->start();
    } catch (const std::exception &e) {
        // Canonical names still come from the udev database; only late LUNs go unnoticed.
        udev_.reset();
        log_error(std::string("not watching block devices: ") + e.what());
    }

    // subscribe -> enumerate -> reconcile; READY=1 once the first listing is in.
    machined_ = std::make_unique<MachinedClient>(*bus_, *signals_, static_cast<MachinedClient::Handler &>(*this));
    machined_->start();
    check(sd_event_add_time_relative(event_, &scan_timer_, CLOCK_MONOTONIC, kScanIntervalUsec, 0, on_scan_timer, this),
          "cannot set up the discovery timer");
    sd_event_source_set_enabled(scan_timer_, SD_EVENT_ON);

    int r = sd_event_loop(event_);
    save_state();  // whatever was still waiting for the next loop iteration
    sd_notify(0, "STOPPING=1\nSTATUS=Stopping; leases stay held by sanlock.");
    log_info("vmleased stopping; " + std::to_string(registry_.leases().size()) +
             " lease(s) stay held by sanlock for their owners");
    return r < 0 ? 1 : r;
}

// --- requests --------------------------------------------------------------

void Daemon::acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                     LeaseMode mode, const std::vector<std::string> &aliases) {
    // For a running machine, its leader: a lease (or an alias) its own
    // sanlock client holds is then no conflict.
    const Machine *m = tracker_.find(owner);
    uint32_t leader = m && !m->reserved ? m->info.leader : 0;
    apply(registry_.acquire(id, owner, disk, resource, mode, leader, false, aliases));
}

void Daemon::release(RequestId id, const std::string &owner, const std::string &resource) {
    apply(tracker_.release_disk(id, owner, resource, to_restore_ ? &*to_restore_ : nullptr));
}

void Daemon::reserve(RequestId id, const std::string &owner, const std::vector<DiskRule> &disks,
                     uint32_t grace_seconds) {
    apply(tracker_.reserve(id, owner, disks, grace_seconds));
}

void Daemon::release_owner(RequestId id, const std::string &owner) { apply(tracker_.release_leases(id, owner)); }

void Daemon::resume(RequestId id, const std::string &owner) { apply(tracker_.resume(id, owner)); }

void Daemon::inspect(RequestId id, const std::string &resource) {
    effector_->inspect(resource,
                       [this, id, resource](InspectOutcome out) { apply(registry_.inspected(id, resource, out)); });
}

void Daemon::clean_up(RequestId id, bool dry_run) {
    effector_->clean_up(tracker_.resources_in_use(), config_.cleanup_min_age, dry_run,
                        [this, id, dry_run](CleanupResult result) {
                            journal::cleanup(result, dry_run);
                            apply(LeaseRegistry::cleaned_up(id, result));
                        });
}

void Daemon::reload(RequestId id) {
    Step step;
    step.replies.push_back({id, reload_config(), ""});
    apply(std::move(step));
}

std::optional<ApiError> Daemon::reload_config() {
    Config next;
    SanlockSettings next_settings;
    try {
        next = load_config(options_.config_path);
        next_settings = sanlock_settings_for(next);
    } catch (const std::exception &e) {  // a ConfigError, or a user lookup that failed
        log_error(std::string("configuration rejected, the old one stays in force: ") + e.what());
        return ApiError{ErrorKind::ConfigInvalid, e.what()};
    }
    // Keys that sanlock or the lease files were set up with.
    const std::pair<const char *, bool> fixed_keys[] = {
        {"host_id", next.host_id != config_.host_id},
        {"lease_dir", next.lease_dir != config_.lease_dir},
        {"lockspace", next.lockspace != config_.lockspace},
        {"io_timeout", next.io_timeout != config_.io_timeout},
        {"lease_max_hosts", next.lease_max_hosts != config_.lease_max_hosts},
        {"lease_file_user/lease_file_group",
         next_settings.lease_uid != settings_.lease_uid || next_settings.lease_gid != settings_.lease_gid},
        {"lockfailure_helper", next_settings.killpath != settings_.killpath},
        {"lease_holder", next_settings.holder != settings_.holder},
    };
    for (const auto &[key, changed] : fixed_keys) {
        if (!changed)
            continue;
        std::string message = std::string(key) + " cannot change while vmleased runs; restart it to apply";
        log_error("configuration rejected, the old one stays in force: " + message);
        return ApiError{ErrorKind::ConfigInvalid, message};
    }
    config_ = std::move(next);
    tracker_.set_config(config_);
    log_info("configuration reloaded from " + options_.config_path);
    return std::nullopt;
}

void Daemon::notify_status() {
    std::string status = "STATUS=Lockspace " + settings_.lockspace + " " + to_string(registry_.lockspace_state()) +
                         ", " + std::to_string(registry_.leases().size()) + " lease(s)";
    if (registry_.lockspace_state() == LockspaceState::Failed && !last_join_error_.empty())
        status += ": " + last_join_error_;
    sd_notify(0, status.c_str());
}

int Daemon::on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    try {
        if (si->ssi_signo == SIGHUP) {
            self->reload_config();
            return 0;
        }
        pid_t sender = static_cast<pid_t>(si->ssi_pid);
        if (si->ssi_signo == SIGTERM && signal_sent_by_sanlock(sender, self->sanlock_run_dir_)) {
            self->on_lock_failure_signal(sender);
            return 0;
        }
        log_info(std::string("received ") + strsignal(static_cast<int>(si->ssi_signo)) + " from pid " +
                 std::to_string(sender));
    } catch (const std::exception &e) {
        log_error(std::string("signal handling failed: ") + e.what());
    }
    sd_event_exit(sd_event_source_get_event(s), 0);
    return 0;
}

int Daemon::on_completions(sd_event_source *, int, uint32_t, void *userdata) {
    static_cast<Daemon *>(userdata)->completions_.drain();
    return 0;
}

}  // namespace vmlease
