// Carrying out a Step: the ordering promises (the lock-failure plan written
// before a lease is announced, the state saved before sanlock is asked), the
// sanlock and machine effects, the journal and the bus told, timers armed.
#include "daemon.hpp"
#include "daemon_internal.hpp"
#include "sanlock_options.hpp"
#include "step_order.hpp"

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
    // The order is step_order.cpp's, and with it the promises it keeps.
    std::string unsaved;
    for (Stage stage : stages_for(step)) {
        switch (stage) {
        case Stage::WritePlan: write_lockfailure_plan(); break;
        case Stage::SaveState: unsaved = save_state(); break;
        case Stage::SaveStateSoon: save_state_soon(); break;
        case Stage::Sanlock:
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
            break;
        case Stage::Journal: journal::record(step, tracker_, registry_, settings_.lockspace); break;
        case Stage::Publish:
            if (manager_)
                manager_->publish(step);
            break;
        case Stage::NotifyStatus: notify_status(); break;
        case Stage::Timers:
            if (!step.grace_timers.empty()) {
                for (const auto &g : step.grace_timers)
                    grace_deadlines_[g.machine] = now_usec() + uint64_t(g.seconds) * 1000000;
                arm_grace_timer();
            }
            for (const auto &r : step.retry_timers)
                after(uint64_t(r.delay_ms) * 1000, [this, r] { apply(tracker_.retry(r.machine, r.disk, r.token)); });
            for (const auto &p : step.protection_timers)
                after(uint64_t(p.seconds) * 1000000, [this, p] { apply(tracker_.grace_over(p.machine, p.epoch)); });
            break;
        case Stage::RetireHolder: retire_holder_if_done(); break;
        case Stage::MachineEffects:
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
            break;
        case Stage::LockFailuresDone:
            // Actions with no machine effect are complete already.
            for (const auto &f : step.lock_failures)
                if (std::none_of(step.machine_effects.begin(), step.machine_effects.end(),
                                 [&](const MachineEffect &e) { return e.machine == f.owner; }))
                    journal::lock_failure_released(f, settings_.lockspace);
            break;
        }
    }
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
            run_guarded("a timer's work", [&] { (*static_cast<Fn *>(userdata))(); });
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

void Daemon::carry_out(const SanlockEffect &effect) {
    if (const auto *a = std::get_if<AcquireEffect>(&effect)) {
        effector_->acquire(*a, [this, resource = a->resource](SanlockOutcome out) {
            // Also for the acquires nothing else journals: an owner's lease
            // taken back after a restart, a restored reservation, an
            // AcquireDisk whose caller alone hears the error.
            if (out.rv < 0)
                log_warning("sanlock acquire of " + resource + " failed: " + out.detail, {{"RESOURCE", resource}});
            apply(registry_.acquire_done(resource, out));
            // sanlock lists the lockspace but is killing its clients (it
            // failed while this agent was not running, or before the
            // helper's report got here): the same failure, handled once.
            if (out.io_errno == 0 && (out.rv == -ENOSPC || out.rv == sanlock_rv::kAcquireLockspace))
                lock_failure("sanlock refused a lease (" + sanlock_strerror(out.rv) + ")");
        });
        // Once per run in the journal; in Warnings (vmleasectl status) from then on.
        if (!workers_advice_logged_ && effector_->acquires_waiting_for_workers() > 0) {
            workers_advice_logged_ = true;
            log_notice(sanlock_workers_advice(effector_->acquires_waiting_for_workers(), effector_->sanlock_workers()));
        }
    } else if (const auto *r = std::get_if<ReleaseEffect>(&effect)) {
        effector_->release(*r, [this, resource = r->resource](SanlockOutcome out) {
            if (out.rv < 0 && out.rv != -ENOENT)
                log_error("sanlock release of " + resource + " failed; the lease stays held: " + out.detail,
                          {{"RESOURCE", resource}});
            apply(registry_.release_done(resource, out));
        });
    }
}

}  // namespace vmlease
