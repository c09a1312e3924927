// The lockspace: joining and rejoining it, sanlock going away, lock
// failures (sanlock's signal, the helper's report) and what follows them,
// and vmlease-holder, which keeps the lockspace while leases are held.
#include "daemon.hpp"
#include "daemon_internal.hpp"

#include "atomic_file.hpp"
#include "core/lock_failure_effect.hpp"
#include "core/owner_name.hpp"
#include "core/sanlock_codes.hpp"
#include "disk_discovery.hpp"
#include "core/disk_path.hpp"
#include "guarded.hpp"
#include "journal.hpp"
#include "lockfailure_plan.hpp"
#include "log.hpp"
#include "open_file_scanner.hpp"
#include "signal_origin.hpp"
#include "udev_disk_namer.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

namespace vmlease {

using namespace daemon_internal;

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
    run_guarded("handling vmlease-holder's exit", [&] {
        sd_event_source_disable_unref(self->holder_watch_);
        self->holder_watch_ = nullptr;
        pid_t pid = self->holder_pid_;
        self->holder_running_ = false;
        self->holder_pid_ = 0;
        if (self->registry_.lockspace_state() != LockspaceState::Joined || self->after_failure_)
            return;  // retired, or killed by sanlock in a failure: a new one comes with the next join
        // One that dies as soon as it starts is not started again and again.
        self->holder_quick_exits_ = now_usec() - self->holder_since_ < 5000000 ? self->holder_quick_exits_ + 1 : 0;
        if (self->holder_quick_exits_ >= 3) {
            self->holder_problem_ = "vmlease-holder exited within 5 s of its start 3 times in a row; it is started "
                                    "again when the lockspace is next joined (vmleased reload or restart)";
            log_message(LOG_CRIT, self->holder_problem_, {{"LOCKSPACE", self->settings_.lockspace}},
                        message_id::kLockFailure);
            return;
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
    });
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
    run_guarded("checking stopped machines", [&] {
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
    });
    return 0;
}

}  // namespace vmlease
