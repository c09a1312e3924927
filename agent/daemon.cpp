#include "daemon.hpp"

#include "atomic_file.hpp"
#include "bus_event_source.hpp"
#include "core/lock_failure_effect.hpp"
#include "core/owner_name.hpp"
#include "core/sanlock_codes.hpp"
#include "disk_discovery.hpp"
#include "disk_path.hpp"
#include "udev_disk_namer.hpp"
#include "guarded.hpp"
#include "journal.hpp"
#include "lockfailure_plan.hpp"
#include "log.hpp"
#include "open_file_scanner.hpp"
#include "sanlock_watchdog.hpp"
#include "signal_origin.hpp"
#include "version.hpp"

#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <fstream>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

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

// The user and group sanlock runs as unless told otherwise (-U/-G).
constexpr const char *kSanlockUser = "sanlock";
// How often the open files of running machines are looked at again, so
// disks hot-plugged into a running VM are protected too.
constexpr uint64_t kScanIntervalUsec = 2 * 1000000;

uint64_t realtime_usec() {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// A machine that just appeared is looked at every kDenseScanUsec for
// kYoungUsec, until a disk it opened is found: qemu opens its disks after
// machined registers it, and until a scan finds them no lease guards them.
// At most kDensePerTick machines per tick, so a mass start does not take the
// CPU from sanlock (each machine is then looked at less often).
constexpr uint64_t kDenseScanUsec = 50 * 1000;
constexpr uint64_t kYoungUsec = 2 * 1000000;
constexpr size_t kDensePerTick = 8;

uint64_t now_usec() {
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// How long after its lock-failure action a machine that is still there
// is named in the journal as one that would not stop.
constexpr uint64_t kStopCheckUsec = 10 * 1000000;

// "state D (disk sleep)" for a process, "" if it is gone.
std::string process_state(uint32_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (pid == 0 || close == std::string::npos || close + 2 >= stat.size())
        return "";
    char c = stat[close + 2];
    return std::string("state ") + c + (c == 'D' ? " (uninterruptible: waiting for storage)" : "");
}

void check(int r, const char *what) {
    if (r < 0)
        throw std::runtime_error(std::string(what) + ": " + strerror(-r));
}

}  // namespace

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
    return w;
}

// The id of a user or group the configuration names. "No such name" is the
// file's error; a lookup that fails (NSS not up yet) is not, and must not
// stop a restart (exit status 78 is never retried).
template <typename Entry, typename Id>
Id id_of(Entry *(*get)(const char *), Id Entry::*id, const std::string &name, const char *key, const char *noun,
         const std::string &where) {
    errno = 0;
    Entry *e = get(name.c_str());
    if (!e && errno != 0 && errno != ENOENT && errno != ESRCH)
        throw std::runtime_error(std::string("cannot look up ") + noun + " \"" + name + "\": " + strerror(errno));
    if (!e)
        throw ConfigError(where + ": " + key + ": no " + noun + " \"" + name + "\" on this host");
    return e->*id;
}

SanlockSettings sanlock_settings_for(const Config &config) {
    SanlockSettings s;
    s.lease_dir = config.lease_dir;
    s.lockspace = config.lockspace;
    s.host_id = config.host_id;
    s.io_timeout = config.io_timeout;
    const std::string where = config.sources.empty() ? std::string("configuration") : config.sources.front();
    // Left unset, lease files belong to whom the running sanlock daemon runs
    // as, so that it can open them: it chowns its socket to that user and
    // group (-U/-G, uname/gname in sanlock.conf, else "sanlock" when that
    // user and group exist). Before sanlock is up, its own default rule.
    struct stat sock {};
    if (stat((sanlock_run_dir_from_env() + "/sanlock.sock").c_str(), &sock) == 0) {
        s.lease_uid = sock.st_uid;
        s.lease_gid = sock.st_gid;
    } else if (struct passwd *pw = getpwnam(kSanlockUser); pw) {
        if (struct group *gr = getgrnam(kSanlockUser); gr) {
            s.lease_uid = pw->pw_uid;
            s.lease_gid = gr->gr_gid;
        }
    }
    if (!config.lease_file_user.empty())
        s.lease_uid = id_of(getpwnam, &passwd::pw_uid, config.lease_file_user, "lease_file_user", "user", where);
    if (!config.lease_file_group.empty())
        s.lease_gid = id_of(getgrnam, &group::gr_gid, config.lease_file_group, "lease_file_group", "group", where);
    s.killpath = config.lockfailure_helper.empty() ? VMLEASE_LOCKFAILURE_HELPER : config.lockfailure_helper;
    // sanlock passes the helper at most 127 bytes of arguments.
    std::string args = runtime_directory();
    s.killpath_args = args.size() < 128 ? args : "";
    s.holder = config.lease_holder.empty() ? VMLEASE_HOLDER : config.lease_holder;
    s.runtime_dir = runtime_directory();
    return s;
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
    effector_ = std::make_unique<SanlockEffector>(settings_, completions_, options_.sanlock_connections);
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
    if (auto warning = sanlock_watchdog_warning(sanlock_run_dir_)) {
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

void Daemon::arm_grace_timer() {
    if (grace_deadlines_.empty()) {
        sd_event_source_set_enabled(grace_timer_, SD_EVENT_OFF);
        return;
    }
    uint64_t next = UINT64_MAX;
    for (const auto &[name, deadline] : grace_deadlines_)
        next = std::min(next, deadline);
    sd_event_source_set_time(grace_timer_, next);
    sd_event_source_set_enabled(grace_timer_, SD_EVENT_ONESHOT);
}

int Daemon::on_grace_timer(sd_event_source *, uint64_t usec, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    try {
        std::vector<std::string> expired;
        for (const auto &[name, deadline] : self->grace_deadlines_)
            if (deadline <= usec)
                expired.push_back(name);
        for (const auto &name : expired) {
            self->grace_deadlines_.erase(name);
            const Machine *m = self->tracker_.find(name);
            if (m && m->reserved)
                log_notice("reservation for " + name + " expired before the machine appeared; releasing its disks",
                           {{"OWNER", name}});
            self->apply(self->tracker_.reservation_expired(name));
        }
        self->arm_grace_timer();
    } catch (const std::exception &e) {
        log_error(std::string("expiring reservations failed: ") + e.what());
    }
    return 0;
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

// --- steps -----------------------------------------------------------------

void Daemon::apply(Step step) {
    // Replies to the tracker's own requests go back to it; what it decides
    // then is applied after this step.
    Step followup;
    for (const auto &reply : step.replies)
        if (is_internal(reply.request))
            followup.append(tracker_.lease_reply(reply));
    if (step.lockspace_state_changed && registry_.lockspace_state() == LockspaceState::Joined) {
        // Orphans go back to the owners the state file names before any
        // other disk is retried: nobody else can ask for one first.
        followup.append(reconcile());
        followup.append(tracker_.retry_failed());
        save_state_soon();
    }
    // Before anyone hears of a new lease: the helper's fallback covers it.
    // Before sanlock is asked for one: a crash cannot leave it unattributed.
    bool acquiring = std::any_of(step.sanlock_effects.begin(), step.sanlock_effects.end(),
                                 [](const SanlockEffect &e) { return std::holds_alternative<AcquireEffect>(e); });
    if (!step.lease_changes.empty() || !step.machine_changes.empty() || acquiring)
        write_lockfailure_plan();
    std::string unsaved;
    if (acquiring || !step.lock_failures.empty() || !step.stale.empty())
        // Also before a lock failure's releases and a stale verdict: the
        // versions a paused machine's leases must be taken back at, and
        // that it must never be resumed, survive a crash right after.
        unsaved = save_state();
    else if (!step.lease_changes.empty() || !step.machine_changes.empty())
        save_state_soon();
    // sanlock first: its calls are the slow part and run on other threads.
    for (const auto &effect : step.sanlock_effects) {
        const auto *a = std::get_if<AcquireEffect>(&effect);
        if (a && !unsaved.empty()) {
            // A lease the state file does not name would be unattributable
            // after a crash (and adoptable by nobody): take none.
            SanlockOutcome out;
            out.io_errno = EIO;
            out.detail = unsaved + "; nothing was taken";
            followup.append(registry_.acquire_done(a->resource, out));
            continue;
        }
        carry_out(effect);
    }

    journal::record(step, tracker_, registry_, settings_.lockspace);
    if (manager_)
        manager_->publish(step);
    if (step.lockspace_state_changed)
        notify_status();
    if (!step.grace_timers.empty()) {
        for (const auto &g : step.grace_timers)
            grace_deadlines_[g.machine] = now_usec() + uint64_t(g.seconds) * 1000000;
        arm_grace_timer();
    }
    for (const auto &r : step.retry_timers)
        after(uint64_t(r.delay_ms) * 1000, [this, r] { apply(tracker_.retry(r.machine, r.disk, r.token)); });
    for (const auto &p : step.protection_timers)
        after(uint64_t(p.seconds) * 1000000, [this, p] { apply(tracker_.grace_over(p.machine, p.epoch)); });
    retire_holder_if_done();
    for (const auto &action : step.machine_effects) {
        auto f = std::find_if(step.lock_failures.begin(), step.lock_failures.end(),
                              [&](const LockFailureChange &c) { return c.owner == action.machine; });
        const LockFailureChange *failure = f == step.lock_failures.end() ? nullptr : &*f;
        if (failure && acted_by_helper_.count(action.machine)) {
            // Once per failure: the helper did it while this agent could not.
            log_notice("lock failure: " + action.machine + ": " + failure->action +
                           " was already carried out by vmlease-lockfailure",
                       {{"OWNER", action.machine}, {"ACTION", failure->action}});
            continue;
        }
        if (failure) {
            failure_actions_pending_++;
            acted_by_helper_.insert(action.machine);  // issued: never again in this failure
        }
        carry_out(action, failure);
    }
    // Actions with no machine effect are complete already.
    for (const auto &f : step.lock_failures)
        if (std::none_of(step.machine_effects.begin(), step.machine_effects.end(),
                         [&](const MachineEffect &e) { return e.machine == f.owner; }))
            journal::lock_failure_released(f, settings_.lockspace);
    if (!followup.empty())
        apply(std::move(followup));
}

void Daemon::carry_out(const MachineEffect &effect, const LockFailureChange *failure) {
    MachinedClient::Done done;
    if (failure)
        done = [this, f = *failure](const std::string &error) {
            journal::lock_failure_action(f, error, settings_.lockspace);
            lock_failure_action_done(f, error.empty());
        };
    if (!machined_) {
        if (done)
            done("systemd-machined is not connected");
        return;
    }
    if (!failure && effect.kind == MachineEffect::Kind::Terminate)
        // on_conflict/on_unprotected: a machine that machined cannot stop
        // must not keep writing a disk it has no lease for.
        done = [this, machine = effect.machine](const std::string &error) {
            if (error.empty())
                return;
            log_crit("cannot terminate machine " + machine + " (" + error + "); killing it", {{"OWNER", machine}});
            machined_->kill(machine, SIGKILL);
        };
    switch (effect.kind) {
    case MachineEffect::Kind::Terminate: machined_->terminate(effect.machine, std::move(done)); break;
    case MachineEffect::Kind::Kill: machined_->kill(effect.machine, effect.signal, std::move(done)); break;
    case MachineEffect::Kind::StartUnit:
        log_notice("lockspace is back: starting " + effect.unit + " again (on_lockfailure: restart)");
        machined_->start_unit(effect.unit, std::move(done));
        break;
    case MachineEffect::Kind::Freeze: freeze(effect.machine, effect.unit); break;
    case MachineEffect::Kind::Thaw: thaw(effect.machine, effect.unit); break;
    }
}

// systemd freezes the machine's unit; if it cannot, the machine's processes
// get SIGSTOP (which a stray SIGCONT would undo: the journal says so).
void Daemon::freeze(const std::string &machine, const std::string &unit) {
    auto fallback = [this, machine](const std::string &why) {
        log_crit("cannot freeze machine " + machine + " (" + why + "); stopping its processes with SIGSTOP instead",
                 {{"OWNER", machine}});
        stopped_instead_.insert(machine);
        machined_->kill(machine, SIGSTOP);
    };
    if (unit.empty()) {
        fallback("machined names no unit for it");
        return;
    }
    machined_->freeze_unit(unit, [this, machine, unit, fallback](const std::string &error) {
        if (!error.empty()) {
            fallback(error);
            return;
        }
        log_warning("machine " + machine + " frozen (" + unit + ") until its disks' leases are held",
                    {{"OWNER", machine}});
    });
}

void Daemon::thaw(const std::string &machine, const std::string &unit) {
    if (stopped_instead_.erase(machine)) {
        machined_->kill(machine, SIGCONT);
        log_notice("machine " + machine + " continued: its leases are held", {{"OWNER", machine}});
        return;
    }
    machined_->thaw_unit(unit, [machine, unit](const std::string &error) {
        if (error.empty())
            log_notice("machine " + machine + " thawed (" + unit + "): its leases are held", {{"OWNER", machine}});
    });
}

void Daemon::after(uint64_t usec, std::function<void()> fn) {
    using Fn = std::function<void()>;
    auto *copy = new Fn(std::move(fn));
    sd_event_source *source = nullptr;
    int r = sd_event_add_time_relative(
        event_, &source, CLOCK_MONOTONIC, usec, 0,
        [](sd_event_source *s, uint64_t, void *userdata) -> int {
            try {
                (*static_cast<Fn *>(userdata))();
            } catch (const std::exception &e) {
                log_error(std::string("a timer's work failed: ") + e.what());
            }
            // One shot: the loop's reference, the only one, goes; the
            // source and the function with it.
            sd_event_source_set_floating(s, 0);
            return 0;
        },
        copy);
    if (r < 0) {
        delete copy;
        log_error(std::string("cannot add a timer: ") + strerror(-r));
        return;
    }
    sd_event_source_set_destroy_callback(source, [](void *userdata) { delete static_cast<Fn *>(userdata); });
    // The loop takes a reference of its own (freed with the loop if the
    // timer never fires); ours goes.
    sd_event_source_set_floating(source, 1);
    sd_event_source_unref(source);
}

// What vmlease-lockfailure applies if this agent cannot answer it.
void Daemon::write_lockfailure_plan() {
    // Until the leases held before this start are reconciled, the plan the
    // agent wrote before names their machines; an empty one would not.
    if (to_restore_)
        return;
    LockFailurePlan plan;
    if (const char *bus = getenv("DBUS_SYSTEM_BUS_ADDRESS"))
        plan.bus_address = bus;
    for (const auto &owner : registry_.owners())
        if (const Machine *m = tracker_.find(owner); m && !m->reserved)
            plan.machines.push_back(
                {owner, to_string(m->on_lockfailure), m->info.leader, leader_start_time(owner, m->info.leader),
                 m->info.unit});
    std::string text = format_plan(plan);
    if (text == written_plan_)
        return;
    if (!write_file_atomically(runtime_directory() + "/" + kLockFailurePlanFile, text)) {
        log_error("cannot write " + runtime_directory() + "/" + kLockFailurePlanFile +
                  "; the lock-failure helper could not act without the agent");
        return;
    }
    written_plan_ = text;
}

// --- machines ------------------------------------------------------------------

// Read once, when the machine is first seen: a leader that died and whose
// pid was reused since must not lend the new process its start time.
uint64_t Daemon::leader_start_time(const std::string &machine, uint32_t leader) {
    auto it = leader_start_.find(machine);
    if (it != leader_start_.end() && it->second.first == leader)
        return it->second.second;
    uint64_t start = process_start_time(static_cast<pid_t>(leader)).value_or(0);
    leader_start_[machine] = {leader, start};
    return start;
}

void Daemon::machine_appeared(const MachineInfo &info) {
    if (const Machine *old = tracker_.find(info.name);
        old && !old->reserved && old->info.leader && info.leader && old->info.leader != info.leader) {
        // Another machine under the same name: the one we knew is gone.
        log_info("machine " + info.name + " has a new leader (" + std::to_string(info.leader) + ", was " +
                     std::to_string(old->info.leader) + "): the old one is gone",
                 {{"OWNER", info.name}});
        machine_gone(info.name);
    }
    leader_start_time(info.name, info.leader);
    bool known = tracker_.find(info.name) != nullptr;
    apply(tracker_.machine_appeared(info));
    if (!known && tracker_.find(info.name)) {
        log_info("machine " + info.name + " (" + info.machine_class + ", leader " + std::to_string(info.leader) +
                     ") appeared",
                 {{"OWNER", info.name}});
        scan_machine(info.name);
        young_[info.name] = {info.leader, now_usec() + kYoungUsec};
        arm_dense_scan();
    }
}

void Daemon::arm_dense_scan() {
    if (dense_armed_ || young_.empty())
        return;
    dense_armed_ = true;
    after(kDenseScanUsec, [this] {
        dense_armed_ = false;
        uint64_t now = now_usec();
        for (auto it = young_.begin(); it != young_.end();) {
            const Machine *m = tracker_.find(it->first);
            bool found = m && std::any_of(m->disks.begin(), m->disks.end(), [](const MachineDisk &d) {
                return d.source == MachineDisk::Source::Discovered;
            });
            if (!m || m->info.leader != it->second.first || it->second.second < now || found)
                it = young_.erase(it);
            else
                ++it;
        }
        // Round robin from where the last tick stopped.
        auto it = young_.upper_bound(dense_last_);
        for (size_t n = 0; n < std::min(kDensePerTick, young_.size()); n++, ++it) {
            if (it == young_.end())
                it = young_.begin();
            scan_machine(it->first);
            dense_last_ = it->first;
        }
        arm_dense_scan();
    });
}

void Daemon::machine_gone(const std::string &name) {
    if (tracker_.find(name))
        log_info("machine " + name + " went away; releasing its leases", {{"OWNER", name}});
    leader_start_.erase(name);
    stopped_instead_.erase(name);
    apply(tracker_.machine_gone(name));
    if (to_restore_ && after_failure_)
        maybe_reconcile();  // its orphans in the failed lockspace can go now
}

void Daemon::machines_listed(bool ok, const std::vector<std::string> &names) {
    if (ok) {
        tracker_.forget_saved(names);  // pins and pauses of machines that ended while we were away
        // Reconcile: machines that ended while machined (or we) looked away.
        std::vector<std::string> gone = tracker_.not_listed(names);
        std::string ended = join_owners(gone);
        log_info("systemd-machined listed " + std::to_string(names.size()) + " machine(s)" +
                 (ended.empty() ? "" : "; ended meanwhile: " + ended));
        for (const auto &name : gone)
            machine_gone(name);
    }
    listing_done_ = true;
    machines_known_ = ok;
    maybe_reconcile();
    if (!ready_) {
        ready_ = true;
        // Start-up (configuration parsing above all) leaves freed heap behind.
        malloc_trim(0);
        sd_notify(0, "READY=1");
        notify_status();
    }
}

void Daemon::device_changed(const DeviceEvent &event) {
    if (manager_)
        manager_->device_changed(event);
    if (event.kind == DeviceEvent::Kind::Added) {
        log_message(LOG_DEBUG, "block device " + event.name + " appeared", {{"DISK", event.name}},
                    message_id::kDeviceAdded);
        apply(tracker_.device_appeared());
        return;
    }
    const Lease *lease = registry_.find_device(event.name, event.identity);
    if (!lease) {
        log_message(LOG_DEBUG, "block device " + event.name + " went away", {{"DISK", event.name}},
                    message_id::kDeviceRemoved);
        return;
    }
    // The lease lives in the shared lease directory, not on the device: it
    // stays held, so no other host can take the disk when the LUN comes back.
    std::string owners = join_owners(lease->owners, ",");
    log_message(LOG_WARNING,
                "block device " + event.name + " went away while leased by " + owners + "; the lease stays held",
                {{"DISK", event.name}, {"RESOURCE", lease->resource}, {"OWNER", owners}}, message_id::kDeviceRemoved);
}

void Daemon::scan_machine(const std::string &name) {
    const Machine *m = tracker_.find(name);
    if (!m || !config_.auto_disk_leases || !config_.discovery.open_files || m->info.leader == 0)
        return;
    pid_t leader = static_cast<pid_t>(m->info.leader);
    // One scan per machine at a time, each on a thread of its own: a file a
    // VM holds open on a hung mount stalls that machine's scan (stat(2)
    // never returns), not every machine's, and never the event loop.
    std::string key = name + "/" + std::to_string(leader);
    if (scanning_.count(key) || scanning_.size() >= kMaxScans)
        return;
    try {
        std::thread([leader, name, key, discovery = config_.discovery, post = completions_.poster(), this] {
            std::vector<OpenFile> files;
            ResolvedPatterns patterns;
            bool scanned = true;
            try {
                files = open_files(machine_processes(leader));
                name_open_files(files, UdevDiskNamer());
                patterns = resolve_patterns(discovery);
            } catch (const std::exception &) {
                scanned = false;  // nothing learnt this time (not "nothing open"); the next scan tries again
            }
            post([this, name, key, scanned, files = std::move(files), patterns = std::move(patterns)] {
                scanning_.erase(key);
                if (scanned)
                    apply(tracker_.files_discovered(name, files, patterns));
            });
        }).detach();
        scanning_.insert(key);
    } catch (const std::system_error &e) {
        log_error("cannot scan machine " + name + ": " + e.what(), {{"OWNER", name}});
    }
}

int Daemon::on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    // A machine whose last scan is still running is not scanned again.
    run_guarded("scanning machines", [&] {
        for (const auto &[name, m] : self->tracker_.machines())
            self->scan_machine(name);
    });
    sd_event_source_set_time(s, usec + kScanIntervalUsec);
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    return 0;
}

void Daemon::carry_out(const SanlockEffect &effect) {
    if (const auto *a = std::get_if<AcquireEffect>(&effect)) {
        effector_->acquire(*a, [this, resource = a->resource](SanlockOutcome out) {
            // Logged where it is handled: the journal entry of the conflict or
            // unprotected machine it becomes, or the caller's error reply.
            if (out.rv < 0)
                log_debug("sanlock acquire of " + resource + " failed: " + out.detail, {{"RESOURCE", resource}});
            apply(registry_.acquire_done(resource, out));
            // sanlock lists the lockspace but is killing its clients (it
            // failed while this agent was not running, or before the
            // helper's report got here): the same failure, handled once.
            if (out.io_errno == 0 && (out.rv == -ENOSPC || out.rv == sanlock_rv::kAcquireLockspace))
                lock_failure("sanlock refused a lease (" + sanlock_strerror(out.rv) + ")");
        });
    } else if (const auto *r = std::get_if<ReleaseEffect>(&effect)) {
        effector_->release(*r, [this, resource = r->resource](SanlockOutcome out) {
            if (out.rv < 0 && out.rv != -ENOENT)
                log_error("sanlock release of " + resource + " failed; the lease stays held: " + out.detail,
                          {{"RESOURCE", resource}});
            apply(registry_.release_done(resource, out));
        });
    }
}

void Daemon::notify_status() {
    std::string status = "STATUS=Lockspace " + settings_.lockspace + " " + to_string(registry_.lockspace_state()) +
                         ", " + std::to_string(registry_.leases().size()) + " lease(s)";
    if (registry_.lockspace_state() == LockspaceState::Failed && !last_join_error_.empty())
        status += ": " + last_join_error_;
    sd_notify(0, status.c_str());
}

// --- lockspace ---------------------------------------------------------------

void Daemon::start_join() {
    bool first = registry_.lockspace_state() == LockspaceState::Absent;
    apply(registry_.set_lockspace_state(first ? LockspaceState::Joining : LockspaceState::Rejoining));
    effector_->join_lockspace(after_failure_, [this](SanlockEffector::JoinOutcome out) { join_finished(std::move(out)); });
}

void Daemon::join_finished(SanlockEffector::JoinOutcome out) {
    const int rv = out.rv;
    const std::string &detail = out.detail;
    if (rv == 0 && out.failing) {
        // Never joined for this agent: the leases it held before its start
        // are orphans in a lockspace sanlock is taking down. Orphans of
        // machines that are gone are given back (they keep the lockspace),
        // machines nobody acted on get their action, then a fresh join.
        watch_sanlock(out.watch_fd);
        log_message(LOG_CRIT,
                    "lockspace " + settings_.lockspace +
                        " failed while vmleased was not running (sanlock is stopping its clients); joining again "
                        "once sanlock has removed it",
                    {{"LOCKSPACE", settings_.lockspace}}, message_id::kLockFailure);
        after_failure_ = true;
        reconnect_on_join_ = true;
        holder_running_ = out.holder.pid > 0;
        holder_pid_ = out.holder.pid;
        try {
            acted_by_helper_ = read_acted(runtime_directory());
        } catch (const std::exception &e) {
            log_warning(std::string("cannot read what vmlease-lockfailure did: ") + e.what());
        }
        apply(registry_.set_lockspace_state(LockspaceState::Failed));
        maybe_reconcile();
        schedule_rejoin();
        return;
    }
    if (rv == 0) {
        join_failures_ = 0;
        after_failure_ = false;
        last_join_error_.clear();
        watch_sanlock(out.watch_fd);
        if (reconnect_on_join_) {
            // Queued before any acquire the join below brings.
            effector_->reconnect_all();
            reconnect_on_join_ = false;
        }
        stopping_.clear();
        // A new lockspace: a failure from now on is a new one.
        acted_by_helper_.clear();
        failure_acted_ = false;
        holder_quick_exits_ = 0;
        try {
            clear_acted(runtime_directory());
        } catch (const std::exception &e) {
            log_warning(std::string("cannot clear the record of lock-failure actions: ") + e.what());
        }
        holder_started(out.holder);
        apply(registry_.set_lockspace_state(LockspaceState::Joined));
        maybe_reconcile();
        return;
    }
    join_failures_++;
    last_join_error_ = detail.empty() ? sanlock_strerror(rv) : detail;
    // Logged once per distinct error, not once per retry.
    if (logged_join_error_ != last_join_error_) {
        log_error(last_join_error_, {{"LOCKSPACE", settings_.lockspace}});
        logged_join_error_ = last_join_error_;
    }
    apply(registry_.set_lockspace_state(LockspaceState::Failed));
    schedule_rejoin();
}

void Daemon::schedule_rejoin() {
    int enabled = SD_EVENT_OFF;
    if (sd_event_source_get_enabled(rejoin_timer_, &enabled) >= 0 && enabled != SD_EVENT_OFF)
        return;  // already scheduled
    uint64_t delay = uint64_t(rejoin_delay_seconds(join_failures_)) * 1000000;
    sd_event_source_set_time_relative(rejoin_timer_, delay);
    sd_event_source_set_enabled(rejoin_timer_, SD_EVENT_ONESHOT);
}

int Daemon::on_rejoin_timer(sd_event_source *, uint64_t, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    if (!run_guarded("rejoining the lockspace", [&] { self->start_join(); }))
        self->schedule_rejoin();
    return 0;
}

// --- restart and reconcile ----------------------------------------------------

namespace {
uint64_t now_realtime_seconds() { return static_cast<uint64_t>(time(nullptr)); }
}  // namespace

void Daemon::load_saved_state() {
    std::string path = runtime_directory() + "/" + kSavedStateFile;
    to_restore_ = SavedState{};
    std::optional<std::string> text;
    try {
        text = read_small_file(path);
    } catch (const std::exception &e) {
        log_error(std::string(e.what()) + "; leases held before this start are restored only for running machines");
        return;
    }
    if (!text) {
        log_info("no saved lease state in " + path +
                 " (first start since boot, or the file was removed): leases held before this start are "
                 "restored only for running machines, others stay held by sanlock for this host until released");
        return;
    }
    std::string error;
    auto saved = parse_saved_state(*text, error);
    if (!saved) {
        // Kept for whoever investigates; sanlock and machined are the truth.
        std::string aside = path + ".corrupt";
        bool moved = rename(path.c_str(), aside.c_str()) == 0;
        log_error(path + ": " + error + (moved ? "; moved to " + aside : "; left in place (cannot move it aside)") +
                  ". Running machines get their leases back from rules and discovery; leases of other owners stay "
                  "held by sanlock for this host until released");
        return;
    }
    to_restore_ = std::move(*saved);
    tracker_.load_saved(*to_restore_);
    log_info("saved lease state: " + std::to_string(to_restore_->leases.size()) + " lease(s) of " +
             std::to_string(to_restore_->owners.size()) + " owner(s) held before this start");
}

std::string Daemon::save_state() {
    std::map<std::string, uint64_t> reserved_until;
    uint64_t mono = now_usec(), real = now_realtime_seconds();
    for (const auto &[name, deadline] : grace_deadlines_)
        reserved_until[name] = real + (deadline > mono ? (deadline - mono) / 1000000 : 0);
    SavedState state = tracker_.snapshot(reserved_until, real);
    if (to_restore_) {
        // Not reconciled yet: what was held before still is (as orphans).
        for (const auto &l : to_restore_->leases)
            if (!registry_.find(l.resource))
                state.leases.push_back(l);
        for (const auto &o : to_restore_->owners)
            if (!state.owner(o.name))
                state.owners.push_back(o);
    }
    std::string text = format_saved_state(state);
    std::string path = runtime_directory() + "/" + kSavedStateFile;
    bool ok = write_file_atomically(path, text);
    std::string error = ok ? "" : "cannot record the lease in " + path + " (" + strerror(errno) + ")";
    // Logged when it starts failing and when it works again, not per change.
    if (!ok && !state_unwritable_)
        log_error(error + "; leases are refused until it can be written, since after a crash their owners could "
                          "not be told");
    else if (ok && state_unwritable_)
        log_notice(path + " is written again");
    state_unwritable_ = !ok;
    return error;
}

// Changes that need no new lease (releases, completions) are written once per
// loop iteration, not once per change: a restart adopting 1,000 leases would
// otherwise write the whole file 1,000 times.
void Daemon::save_state_soon() {
    if (save_state_source_)
        sd_event_source_set_enabled(save_state_source_, SD_EVENT_ONESHOT);
    else
        save_state();
}

int Daemon::on_save_state(sd_event_source *, void *userdata) {
    run_guarded("writing the lease state", [&] { static_cast<Daemon *>(userdata)->save_state(); });
    return 0;
}

void Daemon::maybe_reconcile() {
    Step step = reconcile();
    if (step.empty())
        return;
    apply(std::move(step));
    save_state();
}

Step Daemon::reconcile() {
    // Also in a lockspace that failed while the agent was not running: the
    // orphans of machines that are gone keep it from being removed (and so
    // from being joined again) until they are given back.
    if (!to_restore_ || !listing_done_ || (registry_.lockspace_state() != LockspaceState::Joined && !after_failure_))
        return {};
    SavedState saved = std::move(*to_restore_);
    to_restore_.reset();
    if (registry_.lockspace_state() != LockspaceState::Joined) {
        if (!machines_known_) {
            // Which machines still run is unknown: nothing is given back.
            to_restore_ = std::move(saved);
            return {};
        }
        try {
            // What a helper told "no" did meanwhile.
            auto acted = read_acted(runtime_directory());
            acted_by_helper_.insert(acted.begin(), acted.end());
        } catch (const std::exception &e) {
            log_warning(std::string("cannot read what vmlease-lockfailure did: ") + e.what());
        }
        SavedState running;
        Step step = tracker_.restore_after_failure(saved, acted_by_helper_, running);
        failure_acted_ = true;
        log_notice("the lockspace failed while vmleased was not running: " + std::to_string(step.sanlock_effects.size()) +
                   " orphan lease(s) given back, " + std::to_string(running.leases.size()) +
                   " kept until their machines are gone");
        if (!running.leases.empty())
            to_restore_ = std::move(running);
        return step;
    }
    SavedState deferred;
    Step step = tracker_.restore(saved, now_realtime_seconds(), machines_known_ ? nullptr : &deferred);
    // Counted in leases, as the saved state is: one orphan release per lease
    // whose owner is gone, the deferred ones kept, every other one taken back
    // (a machine's disks may be acquired together, so effects are no count).
    size_t releasing = 0;
    for (const auto &e : step.sanlock_effects)
        if (std::holds_alternative<ReleaseEffect>(e) && std::get<ReleaseEffect>(e).orphan)
            releasing++;
    size_t kept = std::min(saved.leases.size(), releasing + deferred.leases.size());
    size_t adopting = saved.leases.size() - kept;
    if (!saved.leases.empty())
        log_notice("reconciling " + std::to_string(saved.leases.size()) + " lease(s) held before this start: " +
                   std::to_string(adopting) + " taken back, " + std::to_string(releasing) +
                   " released (their owners are gone)" +
                   (deferred.leases.empty() ? std::string()
                                            : ", " + std::to_string(deferred.leases.size()) +
                                                  " of machines kept until systemd-machined answers"));
    if (!deferred.leases.empty())
        to_restore_ = std::move(deferred);
    return step;
}

void Daemon::watch_sanlock(int fd) {
    sd_event_source_disable_unref(sanlock_watch_);
    sanlock_watch_ = nullptr;
    if (fd < 0) {
        log_warning("cannot watch the sanlock daemon (" + sanlock_strerror(fd) +
                    "); if it stops, its leases are noticed gone only at the next sanlock call");
        return;
    }
    // Only hang-ups: sanlock never writes to an idle registered connection.
    if (sd_event_add_io(event_, &sanlock_watch_, fd, EPOLLRDHUP, on_sanlock_watch, this) < 0) {
        close(fd);
        return;
    }
    sd_event_source_set_io_fd_own(sanlock_watch_, true);
}

int Daemon::on_sanlock_watch(sd_event_source *, int, uint32_t, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    run_guarded("handling the sanlock daemon's stop", [&] { self->sanlock_gone(); });
    return 0;
}

void Daemon::sanlock_gone() {
    sd_event_source_disable_unref(sanlock_watch_);
    sanlock_watch_ = nullptr;
    log_message(LOG_CRIT,
                "the sanlock daemon stopped: every lease it held for this host is gone and the lockspace must be "
                "joined again; machines keep running and get their leases back once it is",
                {{"LOCKSPACE", settings_.lockspace}}, message_id::kLockFailure);
    after_failure_ = false;  // a new daemon has no failed lockspace to wait out
    join_failures_ = 0;
    apply(registry_.set_lockspace_state(LockspaceState::Failed));
    apply(tracker_.sanlock_lost());
    effector_->reconnect_all();
    schedule_rejoin();
}

// --- sources -------------------------------------------------------------------

void Daemon::on_lock_failure_signal(pid_t sender) {
    lock_failure("sanlock (pid " + std::to_string(sender) + ") signalled");
}

void Daemon::lock_failure(const std::string &how) {
    // sanlock repeats its signal every second while leases are still held;
    // one failure is handled once, until the lockspace is joined again.
    if (registry_.lockspace_state() != LockspaceState::Joined)
        return;
    log_message(LOG_CRIT,
                how + ": lockspace " + settings_.lockspace +
                    " failed; applying each machine's on_lockfailure and releasing every lease",
                {{"LOCKSPACE", settings_.lockspace}}, message_id::kLockFailure);
    after_failure_ = true;
    reconnect_on_join_ = true;
    failure_actions_ok_ = true;
    try {
        acted_by_helper_ = read_acted(runtime_directory());
    } catch (const std::exception &e) {
        acted_by_helper_.clear();
        log_warning(std::string("cannot read what vmlease-lockfailure did: ") + e.what());
    }
    apply(registry_.set_lockspace_state(LockspaceState::Failed));
    for (const auto &owner : registry_.owners())
        if (const Machine *m = tracker_.find(owner); m && !m->reserved && effect_for(m->on_lockfailure).stops_machine)
            stopping_.insert(owner);
    apply(tracker_.lock_failed());
    failure_acted_ = true;
    if (!stopping_.empty()) {
        log_notice("the leases of " + std::to_string(stopping_.size()) +
                       " machine(s) stay held until each is gone; sanlock keeps escalating meanwhile",
                   {{"LOCKSPACE", settings_.lockspace}});
        sd_event_source_set_time_relative(stop_check_timer_, kStopCheckUsec);
        sd_event_source_set_enabled(stop_check_timer_, SD_EVENT_ONESHOT);
    }
    schedule_rejoin();
}

void Daemon::holder_started(const HolderOutcome &h) {
    holder_running_ = h.pid > 0;
    holder_pid_ = h.pid;
    if (h.started)
        log_info("started vmlease-holder (pid " + std::to_string(h.pid) +
                 "): sanlock runs the lock-failure helper for it while vmleased is not running");
    if (h.problem != holder_problem_ && !h.problem.empty())
        log_message(LOG_CRIT,
                    h.problem + (holder_running_ ? std::string()
                                                 : "; if vmleased is not running when this host loses its lease "
                                                   "storage, nothing stops its VMs"),
                    {{"LOCKSPACE", settings_.lockspace}}, message_id::kLockFailure);
    holder_problem_ = h.problem;
    sd_event_source_disable_unref(holder_watch_);
    holder_watch_ = nullptr;
    if (h.pid <= 0)
        return;
    holder_since_ = now_usec();
    int fd = static_cast<int>(syscall(SYS_pidfd_open, h.pid, 0));
    if (fd < 0)
        return;
    if (sd_event_add_io(event_, &holder_watch_, fd, EPOLLIN, on_holder_exit, this) < 0) {
        close(fd);
        return;
    }
    sd_event_source_set_io_fd_own(holder_watch_, true);
}

int Daemon::on_holder_exit(sd_event_source *, int, uint32_t, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    try {
        sd_event_source_disable_unref(self->holder_watch_);
        self->holder_watch_ = nullptr;
        pid_t pid = self->holder_pid_;
        self->holder_running_ = false;
        self->holder_pid_ = 0;
        if (self->registry_.lockspace_state() != LockspaceState::Joined || self->after_failure_)
            return 0;  // retired, or killed by sanlock in a failure: a new one comes with the next join
        // One that dies as soon as it starts is not started again and again.
        self->holder_quick_exits_ = now_usec() - self->holder_since_ < 5000000 ? self->holder_quick_exits_ + 1 : 0;
        if (self->holder_quick_exits_ >= 3) {
            self->holder_problem_ = "vmlease-holder exited within 5 s of its start 3 times in a row; it is started "
                                    "again when the lockspace is next joined (vmleased reload or restart)";
            log_message(LOG_CRIT, self->holder_problem_, {{"LOCKSPACE", self->settings_.lockspace}},
                        message_id::kLockFailure);
            return 0;
        }
        log_message(LOG_CRIT,
                    "vmlease-holder (pid " + std::to_string(pid) +
                        ") exited while the lockspace is joined; starting a new one (until then a storage failure "
                        "while vmleased is not running would stop no VM)",
                    {{"LOCKSPACE", self->settings_.lockspace}}, message_id::kLockFailure);
        self->effector_->ensure_holder([self](HolderOutcome h) {
            // Tracked even if the lockspace failed meanwhile: then it is
            // retired once nothing of ours is left there.
            self->holder_started(h);
            self->retire_holder_if_done();
        });
    } catch (const std::exception &e) {
        log_error(std::string("handling vmlease-holder's exit failed: ") + e.what());
    }
    return 0;
}

// Recorded only once carried out: what failed is the helper's to do
// (directly, when machined does not), and the helper is told so.
void Daemon::lock_failure_action_done(const LockFailureChange &f, bool ok) {
    if (ok) {
        try {
            record_acted(runtime_directory(), f.owner, f.action);
        } catch (const std::exception &e) {
            log_warning(std::string("cannot record the lock-failure action: ") + e.what());
        }
    }
    failure_actions_ok_ = failure_actions_ok_ && ok;
    if (failure_actions_pending_ > 0 && --failure_actions_pending_ == 0) {
        auto replies = std::move(failure_replies_);
        failure_replies_.clear();
        for (auto &reply : replies)
            reply(failure_actions_ok_);
    }
}

void Daemon::retire_holder_if_done() {
    if (!holder_running_ || !after_failure_ || registry_.lockspace_state() == LockspaceState::Joined ||
        !registry_.leases().empty() || to_restore_)
        return;
    holder_running_ = false;
    effector_->retire_holder(holder_pid_, [](pid_t pid) {
        if (pid > 0)
            log_info("vmlease-holder (pid " + std::to_string(pid) +
                     ") stopped: no lease of this host is left in the failed lockspace");
    });
}

int Daemon::on_stop_check_timer(sd_event_source *, uint64_t, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    try {
        for (auto it = self->stopping_.begin(); it != self->stopping_.end();) {
            const Machine *m = self->tracker_.find(*it);
            if (!m || !self->registry_.owners().count(*it)) {
                it = self->stopping_.erase(it);
                continue;
            }
            std::string state = process_state(m->info.leader);
            log_message(LOG_CRIT,
                        "machine " + *it + " is still there " + std::to_string(kStopCheckUsec / 1000000) +
                            " s after its lock-failure action " + to_string(m->on_lockfailure) + " (leader pid " +
                            std::to_string(m->info.leader) + (state.empty() ? "" : ", " + state) +
                            "); its leases stay held, so sanlock keeps escalating and, with its watchdog, resets "
                            "this host before another host can take the disks",
                        {{"OWNER", *it}, {"ACTION", to_string(m->on_lockfailure)}}, message_id::kLockFailureAction);
            ++it;
        }
    } catch (const std::exception &e) {
        log_error(std::string("checking stopped machines failed: ") + e.what());
    }
    return 0;
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
