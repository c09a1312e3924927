#include "journal.hpp"

#include "log.hpp"

namespace vmlease::journal {

namespace {
const char *conflict_outcome(const Machine *m) {
    if (!m || m->on_conflict == ConflictAction::Terminate)
        return "; terminating the machine";
    if (m->on_conflict == ConflictAction::Pause)
        return "; freezing the machine until the lease is free (on_conflict=pause)";
    return "; on_conflict=warn leaves the machine running, retrying with back-off";
}
}  // namespace

void record(const Step &step, const MachineTracker &machines, const LeaseRegistry &registry,
          const std::string &lockspace) {
    for (const auto &c : step.lease_changes) {
        bool acquired = c.kind == LeaseChange::Kind::Acquired;
        log_message(LOG_INFO,
                    std::string(acquired ? "lease acquired" : "lease released") + " on " + c.lease.disk + " for " +
                        c.owner,
                    {{"OWNER", c.owner}, {"DISK", c.lease.disk}, {"RESOURCE", c.lease.resource}},
                    acquired ? message_id::kLeaseAcquired : message_id::kLeaseReleased);
    }
    for (const auto &c : step.conflicts)
        log_message(LOG_WARNING,
                    "disk " + c.disk + " of machine " + c.machine + " is held by host " +
                        std::to_string(c.holder_host_id) +
                        conflict_outcome(machines.find(c.machine)),
                    {{"OWNER", c.machine}, {"DISK", c.disk}, {"HOLDER_HOST_ID", std::to_string(c.holder_host_id)}},
                    message_id::kLeaseConflict);
    for (const auto &u : step.unprotected) {
        const Machine *m = machines.find(u.machine);
        std::string grace = m ? std::to_string(m->unprotected_grace) : "?";
        if (u.action.empty())
            log_message(LOG_WARNING,
                        "machine " + u.machine + " is not protected: " + u.reason +
                            "; retrying with back-off, on_unprotected=" +
                            (m ? to_string(m->on_unprotected) : "?") + " after " + grace + " s",
                        {{"OWNER", u.machine}, {"DISK", u.disk}, {"REASON", u.reason}},
                        message_id::kMachineUnprotected);
        else
            log_message(u.action == "warn" ? LOG_ALERT : LOG_CRIT,
                        "machine " + u.machine + " stayed unprotected for " + grace + " s (" + u.reason +
                            "); on_unprotected=" + u.action +
                            (u.action == "terminate" ? ": terminating it"
                             : u.action == "pause"   ? ": freezing it until its leases are held"
                                                     : ": it keeps running UNPROTECTED"),
                        {{"OWNER", u.machine}, {"DISK", u.disk}, {"REASON", u.reason}, {"ACTION", u.action}},
                        message_id::kMachineUnprotected);
    }
    for (const auto &st : step.stale) {
        const Machine *m = machines.find(st.machine);
        bool paused = m && (m->frozen || m->stopped);
        log_message(LOG_CRIT,
                    "machine " + st.machine + " is STALE: the lease of disk " + st.disk + " was taken by " +
                        (st.holder_host_id ? "host " + std::to_string(st.holder_host_id)
                                           : std::string("another host (it is free now)")) +
                        " since the machine last held it, so the disk may hold writes the machine has not seen. " +
                        (paused ? "It stays paused and vmlease will not resume it: resuming it would overwrite them. "
                                  "Kill it (machinectl kill --signal=SIGKILL " + st.machine +
                                  "): a graceful stop would let it write first"
                                : "It ran meanwhile: on_conflict applies to it"),
                    {{"OWNER", st.machine}, {"DISK", st.disk}, {"HOLDER_HOST_ID", std::to_string(st.holder_host_id)}},
                    message_id::kMachineStale);
    }
    for (const auto &r : step.resumed)
        log_message(LOG_NOTICE, "machine " + r.machine + " resumed: " + r.reason,
                    {{"OWNER", r.machine}, {"REASON", r.reason}}, message_id::kMachineResumed);
    if (step.lockspace_state_changed)
        log_message(LOG_NOTICE,
                    "lockspace " + lockspace + " is " + to_string(registry.lockspace_state()),
                    {{"LOCKSPACE", lockspace}, {"LOCKSPACE_STATE", to_string(registry.lockspace_state())}},
                    message_id::kLockspaceState);
}

void lock_failure_action(const LockFailureChange &f, const std::string &error, const std::string &lockspace) {
    std::string result = error.empty() ? "done" : "failed: " + error;
    log_message(error.empty() ? LOG_WARNING : LOG_CRIT,
                "lock failure: " + f.owner + ": " + f.action + " " + result + (f.note.empty() ? "" : " (" + f.note + ")"),
                {{"OWNER", f.owner}, {"ACTION", f.action}, {"RESULT", result}, {"LOCKSPACE", lockspace}},
                message_id::kLockFailureAction);
}

void lock_failure_released(const LockFailureChange &f, const std::string &lockspace) {
    log_message(f.action == "ignore" ? LOG_ALERT : LOG_WARNING,
                "lock failure: " + f.owner + ": " + f.action + "; its leases are released" +
                    (f.action == "ignore" ? " and it keeps running UNPROTECTED" : ""),
                {{"OWNER", f.owner}, {"ACTION", f.action}, {"RESULT", "leases released"}, {"LOCKSPACE", lockspace}},
                message_id::kLockFailureAction);
}

void cleanup(const CleanupResult &result, bool dry_run) {
    for (const auto &path : result.removed)
        log_message(dry_run ? LOG_DEBUG : LOG_NOTICE,
                    (dry_run ? "would delete unused lease file " : "deleted unused lease file ") + path,
                    {{"LEASE_FILE", path}, {"RESOURCE", path.substr(path.rfind('/') + 1)}},
                    dry_run ? nullptr : message_id::kLeaseCleanup);
    for (const auto &why : result.skipped)
        log_debug("cleanup kept " + why);
    for (const auto &error : result.errors)
        log_error("cleanup: " + error);
}

}  // namespace vmlease::journal
