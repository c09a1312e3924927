// A Step is what a state change in the core produces, dbus-broker style: the
// effects to carry out next, the replies owed to callers, and a record of
// what changed. The daemon carries out effects; the D-Bus layer turns replies
// and changes into method returns, signals and properties.
#pragma once

#include "api_error.hpp"
#include "config_model.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace vmlease {

enum class LeaseState { Acquiring, Held, Releasing };

// The version of one sanlock lease as this host held it: sanlock's lver
// (one more each time any host takes the lease) and which lease file that
// was (its inode and birth time, mixed; 0: not known). A lease file removed
// and made anew starts again at lver 0: the file tells the two apart.
struct LeaseVersion {
    uint64_t lver = 0;
    uint64_t file = 0;
    bool operator==(const LeaseVersion &) const = default;
};
// By resource (a lease's own and its aliases').
using LeaseVersions = std::map<std::string, LeaseVersion>;
const char *to_string(LeaseState s);

// One sanlock resource on this host. A shared lease may have several owners
// on this host; sanlock sees one lease, released when the last owner goes.
struct Lease {
    std::string disk;      // the disk's identity
    std::string resource;  // MD5 hex of disk
    // Other names of the disk (disk_namer.hpp), whose leases (MD5 of each)
    // are taken and given back with this one, in the same sanlock call.
    std::vector<std::string> aliases;
    LeaseMode mode = LeaseMode::Exclusive;
    LeaseState state = LeaseState::Acquiring;
    std::vector<std::string> owners;  // empty while acquiring
    // Held for the owner by the machine's own sanlock client (libvirt's
    // plugin in the VM's process), not by vmleased: never released by us.
    bool external = false;
    // The version (sanlock's lver) each of its resources (this one and its
    // aliases' leases) is held at; 0 or missing: not known.
    LeaseVersions versions = {};
};

using RequestId = uint64_t;

// --- effects: what the sanlock effector must carry out -------------------
struct AcquireEffect {
    std::string resource;
    std::string disk;
    LeaseMode mode;
    uint32_t owner_pid = 0;  // the owning machine's leader, if any
    // The lease may be adopted if this host holds it as an orphan of an
    // earlier vmleased (SANLK_ACQUIRE_ORPHAN): only for the owner the state
    // file, or a running machine's rules or discovery, say it belongs to.
    bool adopt_orphan = false;
    std::vector<std::string> alias_resources = {};  // taken with it, all or nothing
    // Taken only at these versions (resource -> lver): a paused machine's
    // leases, which nobody may have taken since it last held them.
    LeaseVersions pins = {};
};
struct ReleaseEffect {
    std::string resource;
    // An orphan this host still holds from before the agent (re)started,
    // released with SANLK_REL_ORPHAN rather than from a connection.
    bool orphan = false;
    std::vector<std::string> alias_resources = {};  // given back with it
};
// The lease names of a lease's aliases.
std::vector<std::string> alias_resources(const Lease &lease);
AcquireEffect acquire_effect(const Lease &lease, uint32_t owner_pid, bool adopt_orphan,
                             const LeaseVersions &pins = {});
ReleaseEffect release_effect(const Lease &lease, bool orphan = false);
using SanlockEffect = std::variant<AcquireEffect, ReleaseEffect>;

// --- replies to callers ---------------------------------------------------
// InspectDisk's answer: the lease file's holders, as this host rates them.
struct Inspection {
    struct Holder {
        uint64_t host_id = 0;
        uint64_t generation = 0;
        std::string state;  // live|dead|fail|unknown|free
        bool this_host = false;
    };
    std::string lease_file;
    std::vector<Holder> holders;
    uint64_t version = 0;
};

struct Reply {
    RequestId request;
    std::optional<ApiError> error;  // nullopt: success
    std::string resource;           // the lease the reply is about (AcquireDisk returns its object)
    std::vector<uint64_t> holders = {};  // LeaseHeld: the host ids holding it
    std::string machine = {};            // RegisterMachine: the machine the reply is about
    std::optional<Inspection> inspection = {};  // InspectDisk
    std::vector<std::string> removed = {};      // CleanupLeases: the lease files removed
};

// Requests the core makes on its own behalf (for machines) carry ids with
// this bit set; the D-Bus layer never sees them.
inline constexpr RequestId kInternalRequest = 1ull << 63;
inline bool is_internal(RequestId id) { return (id & kInternalRequest) != 0; }

// --- changes: what happened, for signals and properties -------------------
struct LeaseChange {
    enum class Kind { Acquired, Released } kind;
    std::string owner;
    Lease lease;          // snapshot after the change
    bool lease_gone = false;  // Released and no owner left: the lease object goes away
};

// --- machines -------------------------------------------------------------
// Something to do to a machine through systemd-machined.
struct MachineEffect {
    // StartUnit: systemd starts `unit` again (on_lockfailure: restart).
    // Freeze/Thaw: systemd freezes the machine's unit (cgroup freezer: no
    // stray SIGCONT undoes it) and thaws it again.
    enum class Kind { Terminate, Kill, StartUnit, Freeze, Thaw } kind;
    std::string machine;
    int signal = 0;    // for Kill
    std::string unit;  // for StartUnit, Freeze, Thaw

    static MachineEffect terminate(std::string machine) { return {Kind::Terminate, std::move(machine), 0, ""}; }
    static MachineEffect kill(std::string machine, int sig) { return {Kind::Kill, std::move(machine), sig, ""}; }
    static MachineEffect start_unit(std::string unit) { return {Kind::StartUnit, "", 0, std::move(unit)}; }
    static MachineEffect freeze(std::string machine, std::string unit) {
        return {Kind::Freeze, std::move(machine), 0, std::move(unit)};
    }
    static MachineEffect thaw(std::string machine, std::string unit) {
        return {Kind::Thaw, std::move(machine), 0, std::move(unit)};
    }
};
// Ask again for a machine's disk that is not held, after `delay_ms`
// (back-off); the tracker ignores a timer whose `token` is no longer the
// disk's.
struct RetryTimer {
    std::string machine;
    std::string disk;
    uint64_t token;
    uint32_t delay_ms;
};
// A machine became exposed (a disk it may write is not held): unless that
// ends first, its on_unprotected applies after `seconds`.
struct ProtectionTimer {
    std::string machine;
    uint64_t epoch;
    uint32_t seconds;
};
// A machine is not protected: a disk's acquire failed or another holder has
// it (action empty), or its grace ran out and on_unprotected was applied
// (action terminate|pause|warn).
struct UnprotectedChange {
    std::string machine;
    std::string disk;
    std::string reason;
    std::string action;
};
// Release a reservation unless its machine has appeared by then.
struct GraceTimer {
    std::string machine;
    uint32_t seconds;
};
// A machine's disk is held elsewhere.
struct ConflictChange {
    std::string machine;
    std::string disk;
    uint32_t holder_host_id;
};
// The lockspace failed under an owner's leases: what was done about it
// (an on_lockfailure action, or "release" for an owner that is no machine).
struct LockFailureChange {
    std::string owner;
    std::string action;
    std::string note;  // e.g. why restart acted as terminate
};
// A paused machine's lease was taken by someone else since it last held it
// (its version moved on): resuming the machine would write over that. It
// stays paused and is never resumed by vmlease. `holder_host_id`: who holds
// it now (0: free now; who took it is not known).
struct StaleChange {
    std::string machine;
    std::string disk;
    uint32_t holder_host_id;
};
// A machine vmlease paused goes on: its leases are held again, each at the
// version it had when it was paused (or it never held them: on_conflict).
struct ResumeChange {
    std::string machine;
    std::string reason;
};
// A machine appeared, changed (disks, state) or went away.
struct MachineChange {
    enum class Kind { Added, Updated, Removed } kind;
    std::string machine;
};

struct Step {
    std::vector<SanlockEffect> sanlock_effects;
    std::vector<MachineEffect> machine_effects;
    std::vector<GraceTimer> grace_timers;
    std::vector<RetryTimer> retry_timers;
    std::vector<ProtectionTimer> protection_timers;
    std::vector<UnprotectedChange> unprotected;
    std::vector<Reply> replies;
    std::vector<LeaseChange> lease_changes;
    std::vector<ConflictChange> conflicts;
    std::vector<MachineChange> machine_changes;
    std::vector<LockFailureChange> lock_failures;
    std::vector<StaleChange> stale = {};
    std::vector<ResumeChange> resumed = {};
    bool lockspace_state_changed = false;

    void append(Step &&other);
    // Nothing to do and nothing to tell.
    bool empty() const;
};

// A lease's holder as sanlock reads it from the lease file, with how
// sanlock on this host rates that holder's host.
struct LeaseOwner {
    uint64_t host_id = 0;
    uint64_t generation = 0;
    uint64_t timestamp = 0;
    std::string host_state;  // live|dead|fail|unknown|free
};

// What reading a lease file for InspectDisk gave.
struct InspectOutcome {
    int rv = 0;              // 0, -ENOENT (no lease file) or another failure
    std::string detail;      // a failure in words
    std::string lease_file;  // the file read
    std::vector<LeaseOwner> owners;
    uint64_t version = 0;
};

// What CleanupLeases did (or, in a dry run, would do).
struct CleanupResult {
    std::vector<std::string> removed;  // lease file paths (dry run: would be removed)
    std::vector<std::string> skipped;  // "path: why", for the journal
    std::vector<std::string> errors;   // "path: what went wrong"
};

// What sanlock said about an acquire or release.
struct SanlockOutcome {
    int rv = 0;                             // sanlock's return code (0 or negative; a release of orphans: their count)
    std::vector<uint64_t> holder_host_ids;  // for a lease held elsewhere, if they could be read
    std::string detail;                     // human-readable explanation of a failure
    bool held_by_owner_process = false;     // -EEXIST, and the holder is the owner's leader process
    // A file-system error (errno) before sanlock was asked: creating the
    // lease file, or recording the lease in the state file. Never mixed up
    // with sanlock's codes (an EEXIST here is not "held on this host").
    int io_errno = 0;
    // Alias leases the owner's own sanlock client (libvirt's plugin in the
    // VM) holds: the rest was taken without them, and they are not ours.
    std::vector<std::string> owner_held_aliases = {};
    // Taken: the version each resource is held at now.
    LeaseVersions versions = {};
};


}  // namespace vmlease
