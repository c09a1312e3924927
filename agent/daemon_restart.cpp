// Restarting without dropping a lease: the state file of who owns what, and
// the reconcile that gives leases back to their owners once machined answered.
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

}  // namespace vmlease
