// Where machine decisions are made: which disks each machine needs (config
// rules, disks its processes hold open, its reservation), what happens when
// one of them is held elsewhere (on_conflict), and that everything a machine
// held is released when it goes away. Leases themselves are taken and given
// back through the LeaseRegistry, with the machine's name as owner and
// request ids of the internal range; their replies come back through
// lease_reply(). Like the registry, no I/O and no system library.
#pragma once

#include "config_model.hpp"
#include "disk_namer.hpp"
#include "lease_registry.hpp"
#include "saved_state.hpp"
#include "step.hpp"

#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

namespace vmlease {

struct MachineInfo {
    std::string name;
    std::string machine_class;  // vm | container
    std::string unit;           // e.g. machine-vm1.scope
    uint32_t leader = 0;
};

// A file or block device a machine's processes hold open.
struct OpenFile {
    std::string path;  // as /proc shows it
    bool writable = false;
    // Its identity, looked up where the file was found (off the event
    // loop: the file a VM chose may be on a hung file system); if unset the
    // tracker's namer looks it up. Its aliases are the paths the VM was
    // given for it (qemu's command line), for libvirt's leases.
    std::optional<DiskName> name = std::nullopt;
    // Other names it has on this host, for the discovery patterns: a block
    // device's node and links.
    std::vector<std::string> names = {};
    int pid = 0;      // a process holding it open
    std::string fd = {};  // as that process's fd
};

// The discovery patterns with their fixed leading directories resolved
// (a symlinked /var/lib/libvirt/images), found off the event loop.
struct ResolvedPatterns {
    std::vector<std::string> include, exclude;
};

struct MachineDisk {
    // Restored: held before the agent restarted (from the state file); kept
    // for the machine's life like a reservation's disks.
    enum class Source { Rule, Discovered, Reservation, Restored };
    // Waiting: a rule names a device this host does not have (yet), e.g. a
    // LUN logged in after the VM started; taken when the device appears.
    // Unidentified: it has no name every host agrees on (a block device
    // with no WWN, serial or device-mapper UUID): no lease can protect it.
    // Stale: the machine held its lease, lost it (a lock failure, the
    // sanlock daemon stopping) and someone took the lease since: its
    // version moved on. Never asked for again.
    enum class State { Waiting, Acquiring, Held, Conflict, Failed, Released, Unidentified, Stale };
    std::string disk;      // its identity; while Waiting or Unidentified, the path as named
    std::string resource;
    std::vector<std::string> aliases;  // other names, whose leases are taken with it
    LeaseMode mode = LeaseMode::Exclusive;
    Source source = Source::Rule;
    State state = State::Acquiring;
    std::string error;  // for Conflict/Failed: why
    // If this host holds the lease as an orphan of an earlier vmleased, it
    // may be taken over for this machine: the disk comes from the machine's
    // rules, its discovery or the state file, not from a RegisterMachine
    // caller (who could otherwise name a running VM's disk).
    bool may_adopt = false;
    // Not held since (CLOCK_REALTIME µs; 0 while held or released).
    uint64_t unprotected_since = 0;
    // Failed for want of the lockspace: taken again when it is (re)joined,
    // and on_lockfailure, not on_unprotected, says what happens meanwhile.
    bool awaits_lockspace = false;
    uint32_t attempts = 0;     // acquires that failed since it was last held
    uint64_t retry_token = 0;  // the retry timer that may ask again
    std::string reported;      // the reason last announced (MachineUnprotected)
    uint32_t missed_scans = 0;  // Unidentified, discovered: scans in a row that did not find it
    // The version (lver) each of its leases (resource, aliases') had when
    // the machine last held them. Once it has held them, an exclusive
    // lease is only ever taken back at these versions: a machine that was
    // paused (or ran) without it must not go on over another host's writes.
    LeaseVersions versions = {};
};
const char *to_string(MachineDisk::State s);

struct Machine {
    MachineInfo info;
    std::vector<MachineDisk> disks;
    LockFailureAction on_lockfailure = LockFailureAction::Poweroff;
    ConflictAction on_conflict = ConflictAction::Terminate;
    UnprotectedAction on_unprotected = UnprotectedAction::Terminate;
    uint32_t unprotected_grace = 60;
    bool terminating = false;  // on_conflict asked machined to stop it
    bool reserved = false;     // RegisterMachine'd, and machined has not registered it yet
    bool frozen = false;       // vmlease froze its unit (on_conflict or on_unprotected pause)
    bool stopped = false;      // on_lockfailure: pause sent it SIGSTOP
    // Let it go on (SIGCONT) once its leases are held again at their
    // versions (resume_after_lockfailure).
    bool resume_after_lockfailure = true;
    // ResumeMachine waits for its leases: the request to answer.
    std::optional<RequestId> resume_request = std::nullopt;
    // A lease it held was taken by someone else since: never resumed or
    // thawed by vmlease again, whatever becomes of its disks (sticky; kept
    // in the state file).
    bool stale = false;
    // Its pause was restored from the state file: not resumed before a scan
    // of its open files has shown every disk it writes.
    bool awaiting_scan = false;
    // Exposed: a disk it may be writing is not held and nothing stops it
    // (see exposed()); `exposed_epoch` names that stretch for its timer.
    bool exposed = false;
    uint64_t exposed_epoch = 0;
    bool unprotected_acted = false;  // on_unprotected applied in this stretch
};
// "reserved" (waiting for machined to register it), "running", "conflict"
// (a disk is held elsewhere), "protecting" (leases still being taken),
// "stale" (a lease it held was taken by someone else since), "frozen"
std::string machine_state(const Machine &m);
// Every disk it should hold is held: nothing it writes is unguarded.
bool machine_protected(const Machine &m);
// Why not, for people: "disk D: failed: <error>"; "" when protected.
std::string unprotected_reason(const Machine &m);

// Back-off between acquires of a disk a machine does not hold yet.
inline constexpr uint32_t kRetryFirstMs = 1000;
inline constexpr uint32_t kRetryMaxMs = 30000;
uint32_t retry_delay_ms(uint32_t attempts);

// Bound on disks tracked per machine (rules plus discovered), so one machine
// holding thousands of files open cannot make the agent allocate without end.
inline constexpr size_t kMaxDisksPerMachine = 256;
// Scans in a row that must miss a disk found without an identity before it is forgotten.
inline constexpr uint32_t kUnidentifiedMissedScans = 3;
// Bound on reservations waiting for their machine.
inline constexpr size_t kMaxReservations = 1024;
inline constexpr uint32_t kDefaultGraceSeconds = 120;

class MachineTracker {
public:
    // `namer` turns the paths of rules and of discovered files into canonical
    // disk names; it must outlive the tracker.
    // `now` gives CLOCK_REALTIME in µs (for "unprotected since").
    using Clock = uint64_t (*)();
    MachineTracker(LeaseRegistry &leases, const Config &config, const DiskNamer &namer = lexical_namer(),
                   Clock now = nullptr)
        : leases_(leases), config_(&config), namer_(namer), now_(now) {}
    static const DiskNamer &lexical_namer();
    // After a reload: rules apply to machines that appear from now on.
    void set_config(const Config &config) { config_ = &config; }

    Step machine_appeared(const MachineInfo &info);
    Step machine_gone(std::string name);  // by value: it erases the machine the name may belong to
    // The running machines (not reservations) machined's listing does not
    // name: they ended while machined, or this agent, looked away.
    std::vector<std::string> not_listed(const std::vector<std::string> &listed) const;
    // What a scan found open in the machine's processes right now.
    Step files_discovered(const std::string &name, const std::vector<OpenFile> &files,
                          const ResolvedPatterns &resolved = {});
    // The registry's reply to a request this tracker made.
    Step lease_reply(const Reply &reply);
    // An administrator releases everything an owner holds (ReleaseMachine,
    // Machine.Release); the reply goes to request `id`. A tracked machine
    // keeps running, its disks marked released.
    Step release_leases(RequestId id, const std::string &owner);
    // ReleaseDisk: one lease; if it is a machine's disk, it stays released
    // (no retry) until the machine ends. `not_reconciled`: what the state
    // file says was held before a restart and is not given back to its
    // owners yet (machined not asked): a lease it names goes back to them,
    // never to a caller, and the call is refused.
    Step release_disk(RequestId id, const std::string &owner, const std::string &resource,
                      const SavedState *not_reconciled = nullptr);
    // RegisterMachine: take every disk (mode none: no lease) before the VM
    // starts, all or nothing; the reply to `id` names the machine. Bound to
    // the machine of that name when machined registers it; released after
    // `grace_seconds` if it never does. `disks` must be canonical.
    // `restored`: the reservation comes from the state file, so orphans of
    // its disks are its own to take over.
    Step reserve(RequestId id, const std::string &owner, const std::vector<DiskRule> &disks, uint32_t grace_seconds,
                 bool restored = false);
    Step reservation_expired(std::string owner);
    // The lockspace is (re)joined: try again what failed for lack of it.
    Step retry_failed();
    // A RetryTimer fired: ask again for the disk, if it still waits.
    Step retry(const std::string &machine, const std::string &disk, uint64_t token);
    // A ProtectionTimer fired: if the machine is still exposed in the same
    // stretch, its on_unprotected applies.
    Step grace_over(const std::string &machine, uint64_t epoch);
    // This host lost its lockspace: every owner's leases are no longer
    // protected and other hosts may take them soon. Applies each machine's
    // on_lockfailure (poweroff: SIGKILL, terminate, pause: SIGSTOP, ignore,
    // restart: terminate now and start its service unit again after the
    // rejoin) and releases what every owner holds. Disks of machines left
    // running (pause, ignore) are taken again once the lockspace is back.
    Step lock_failed();
    // The agent restarted: `saved` is what it held before (the state file),
    // the machines machined runs now are known, and the lockspace is
    // joined. Running machines take their leases again (sanlock lets this
    // host adopt its orphans), reservations whose time is not up and
    // AcquireDisk owners that are no machine are restored, and leases of
    // machines that ended meanwhile are released. `now` is CLOCK_REALTIME
    // seconds. If machined could not be asked (`deferred` not null), leases
    // of machines are neither adopted nor released but put in `deferred`,
    // to restore once it answers.
    Step restore(const SavedState &saved, uint64_t now, SavedState *deferred = nullptr);
    // The same, when the lockspace failed while the agent was not running:
    // nothing can be taken. Orphans are given back (a failed lockspace is
    // not removed while any remain) except those of machines that are still
    // there and that their lock-failure action should end: those go into
    // `still_running`, to give back once the machine is gone, and until then
    // keep sanlock escalating.
    // A machine still running that is not in `acted` (the lock-failure
    // actions already carried out in this failure) gets its action now.
    Step restore_after_failure(const SavedState &saved, const std::set<std::string> &acted, SavedState &still_running);
    // The sanlock daemon stopped: it forgot every lease. Each machine's disks
    // are taken again once the lockspace is back (see retry_failed); any
    // that another host took meanwhile then meets on_conflict.
    Step sanlock_lost();
    // What to remember for restore(): every lease sanlock may hold for us
    // and who its owners are. `reserved_until`: CLOCK_REALTIME seconds at
    // which each waiting reservation expires; `now` for those not yet timed.
    // Every lease CleanupLeases must leave alone: the leases held here with
    // their aliases, and each machine's disks whether held now or not (a
    // disk lost in a lock failure is taken back at its version: its lease
    // file is kept, or taking it anew, versions from 0, would hide whether
    // another host took it meanwhile).
    std::set<std::string> resources_in_use() const;
    SavedState snapshot(const std::map<std::string, uint64_t> &reserved_until, uint64_t now) const;
    // A block device appeared (udev): disks rules name that were waiting for
    // a device are named again, and taken if they now resolve.
    Step device_appeared();
    // ResumeMachine: an orchestrator or admin paused the machine (or vmlease
    // did and does not resume it by itself): take back what it does not
    // hold, each lease at the version it had, and let it go on (thaw,
    // SIGCONT). Answered once that is done; refused (LeaseStale) if a lease
    // moved on, and never resumed then.
    Step resume(RequestId id, const std::string &owner);
    // At start, before machines are listed: the pins, pauses and lease
    // versions the state file recorded, applied to each machine as it
    // appears (its leader must match).
    void load_saved(const SavedState &saved);
    // After a listing of machined's machines: what was recorded for
    // machines not among them is forgotten.
    void forget_saved(const std::vector<std::string> &listed);

    const std::map<std::string, Machine> &machines() const { return machines_; }
    const Machine *find(const std::string &name) const;

private:
    // Every public call ends here: announce disks newly unprotected, start
    // or stop each changed machine's grace, thaw what is protected again.
    Step finish(Step step);
    void track_protection(Step &step, Machine &m);
    void after_failure(Step &step, Machine &m, MachineDisk &d, const ApiError &error,
                       const std::vector<uint64_t> &holders);
    void apply_lock_failure_action(Step &step, const std::string &owner, const Machine &m);
    void resume_if_protected(Step &step, Machine &m);
    // A machine appearing that the state file says was paused, or had
    // leases to take back at their versions: so it is, and they are, before
    // any rule or scan asks for its disks without a version.
    void apply_saved(Step &step, Machine &m);
    std::map<std::string, std::vector<SavedPin>> saved_pins_;  // by machine, until it appears
    std::map<std::string, SavedPause> saved_paused_;
    // Versions of leases held before the restart, by machine and resource,
    // with the machine's leader then: its first re-take is pinned to them.
    struct SavedVersions {
        uint32_t leader = 0;
        std::map<std::string, LeaseVersions> by_resource;
    };
    std::map<std::string, SavedVersions> saved_versions_;
    Step want(Machine &m, const DiskRule &rule, MachineDisk::Source source);
    Step want_named(Machine &m, const DiskName &name, const std::string &path, LeaseMode mode,
                    MachineDisk::Source source);
    Step request_acquire(Machine &m, MachineDisk &d);
    // The versions an acquire of `d` must find (see MachineDisk::versions).
    LeaseVersions pins_of(const MachineDisk &d) const;
    RequestId next_id() { return kInternalRequest | next_++; }

    LeaseRegistry &leases_;
    const Config *config_;
    const DiskNamer &namer_;
    Clock now_;
    uint64_t now() const { return now_ ? now_() : 0; }
    uint64_t next_token_ = 1;
    std::map<std::string, Machine> machines_;
    // A request this tracker made to the registry for a machine (kInternalRequest ids).
    struct OwnRequest {
        std::string machine;
        std::string disk;       // empty: a release whose reply nobody needs
        RequestId rollback_of = 0;  // a release undoing the reservation answered to this request
        uint32_t leader = 0;        // of the machine that asked (a same-name successor's is another)
    };
    // A failed reservation's reply waits until what it took is given back.
    struct Rollback {
        Reply reply;
        size_t remaining = 0;
    };
    std::map<RequestId, Rollback> rollbacks_;  // by the RegisterMachine request
    std::map<RequestId, OwnRequest> requests_;
    // A RegisterMachine waiting for all its acquires.
    struct Reservation {
        RequestId reply_to;
        size_t outstanding = 0;
        std::optional<ApiError> first_error;
        std::vector<uint64_t> holders;
        uint32_t grace_seconds = kDefaultGraceSeconds;
    };
    std::map<std::string, Reservation> reservations_;  // by machine
    Step finish_reservation(std::string owner);  // by value: callers pass names of machines it may erase
    uint64_t next_ = 1;
    std::vector<std::string> restart_units_;  // service units to start after the rejoin
};

}  // namespace vmlease
