// The lease registry is where every lease decision is made. It owns the
// state of all leases on this host and of the lockspace, takes requests and
// sanlock outcomes as input, and answers with a Step: what sanlock must do
// next, which callers get which reply, and what changed (for signals). It
// does no I/O and includes no system library, so it is unit-tested alone.
#pragma once

#include "api_error.hpp"
#include "config_model.hpp"
#include "saved_state.hpp"
#include "step.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace vmlease {

enum class LockspaceState { Absent, Joining, Joined, Failed, Rejoining };
const char *to_string(LockspaceState s);

// Upper bound on leases one host tracks; beyond it callers get LimitsExceeded.
inline constexpr size_t kMaxLeases = 20000;
// Aliases taken with one lease: sanlock takes at most 8 resources per call.
inline constexpr size_t kMaxAliases = 4;

// How long to wait before joining the lockspace again after `failures`
// failed joins in a row: 1, 2, 4 ... 30 seconds.
inline unsigned rejoin_delay_seconds(unsigned failures) {
    return failures < 5 ? 1u << failures : 30u;
}

class LeaseRegistry {
public:
    explicit LeaseRegistry(uint32_t host_id) : host_id_(host_id) {}

    // Requests. `disk` must already be canonical (see disk_path.hpp).
    // `owner_pid`: the owning machine's leader, so that a lease its own
    // sanlock client already holds is recognised rather than fought over.
    // `may_adopt`: if this host holds the lease as an orphan of an earlier
    // vmleased, it may be taken over for this owner (the state file or a
    // running machine's rules or discovery say it is the owner's); without
    // it the caller gets LeaseHeld naming this host, so an AcquireDisk by
    // anyone cannot take over a running VM's lease after an agent restart.
    // `aliases`: other names of the disk (disk_namer.hpp) whose leases are
    // taken with it when the lease is first taken here; a name another
    // lease here holds refuses the request, unless this owner holds it.
    // `pins`: taken from sanlock only at these lease versions (resource ->
    // lver): the re-take of a paused machine's disk, refused with
    // LeaseStale if anyone took the lease since (see MachineTracker).
    Step acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                 LeaseMode mode, uint32_t owner_pid = 0, bool may_adopt = false,
                 const std::vector<std::string> &aliases = {}, const LeaseVersions &pins = {});
    // Releasing a lease nobody here holds gives back an orphan of this host
    // (an administrator's ReleaseDisk after the state file was lost): the
    // reply says NoSuchLease if sanlock had none.
    Step release(RequestId id, const std::string &owner, const std::string &resource);
    Step release_owner(RequestId id, const std::string &owner);
    // A running machine wants this disk and does not hold it yet (its
    // acquire failed, or is being retried): nobody else on this host is
    // granted it meanwhile, or a retry would find the VM's disk given away.
    void claim(const std::string &resource, const std::string &owner, LeaseMode mode);
    void unclaim(const std::string &owner);
    void unclaim(const std::string &owner, const std::string &resource);

    // Outcomes of effects, posted back by the effector.
    Step acquire_done(const std::string &resource, const SanlockOutcome &outcome);
    Step release_done(const std::string &resource, const SanlockOutcome &outcome);

    Step set_lockspace_state(LockspaceState state);

    // InspectDisk's and CleanupLeases' outcomes become their replies.
    // sanlock rates other hosts by watching their delta leases, not itself:
    // while the lockspace is joined, this host counts as live.
    Step inspected(RequestId id, const std::string &resource, const InspectOutcome &outcome) const;
    // Honest about partial success: if any file could not be handled the
    // call fails, and the error says what was removed all the same.
    static Step cleaned_up(RequestId id, const CleanupResult &result);

    // After a restart: an orphan sanlock still holds for this host that no
    // owner wants any more is given back. Nothing is announced (nobody was
    // told it was held); an acquire for it meanwhile waits for the release.
    Step release_orphan(const std::string &resource, const std::string &disk,
                        const std::vector<std::string> &aliases = {});
    // The sanlock daemon went away and with it every lease it held for us
    // (not orphans: sanlock forgets them when it stops). Every owner is told.
    Step all_leases_lost();

    // Every lease sanlock may hold for us right now, with who wants it
    // (owners and acquirers still waiting), for the state file.
    std::vector<SavedLease> saved_leases() const;

    LockspaceState lockspace_state() const { return lockspace_state_; }
    const std::map<std::string, Lease> &leases() const { return leases_; }
    // Everyone holding at least one lease, sorted.
    std::set<std::string> owners() const;
    const Lease *find(const std::string &resource) const;
    // The lease of a block device by its name (/dev/disk/by-path/...) and
    // identity (empty if it has none): held under its identity, or, taken
    // before an upgrade, under its name. Null if none is held here.
    // ReleaseDisk's lease among a disk's `names` (its identity, its
    // aliases, the path as the caller wrote it: a lease taken under it
    // before the identity rule): the first one `owner` holds here, else the
    // identity's if anyone here holds it (the release is then refused for
    // the right reason), else none: an orphan at most, whose release only
    // an administrator decides.
    std::optional<std::string> lease_to_release(const std::string &owner, const std::vector<std::string> &names) const;
    const Lease *find_device(const std::string &name, const std::string &identity) const;
    // The version this host last took `resource` at (any acquire that
    // succeeded, given back at once or not); 0 if none since the start.
    LeaseVersion last_taken(const std::string &resource) const;
    uint32_t host_id() const { return host_id_; }

private:
    struct Waiter {
        RequestId request;
        std::string owner;
        LeaseMode mode;
        bool may_adopt = false;
        // Kept for an acquire asked again later (after a release, an orphan):
        uint32_t owner_pid = 0;
        std::vector<std::string> aliases = {};
        LeaseVersions pins = {};
    };
    struct Removal {
        RequestId request;
        std::string owner;
    };
    // A request that completes when several leases are released (ReleaseMachine).
    struct MultiRelease {
        size_t remaining = 0;
        std::optional<ApiError> first_error;
    };
    // The sanlock call in progress for a resource, and who waits on it.
    struct SanlockCall {
        // The acquire with sanlock may take over an orphan of this host.
        bool adopting = false;
        std::vector<Waiter> acquirers;     // replied when the acquire completes
        std::vector<Removal> releasers;    // replied when the release completes
        std::vector<Waiter> after_release; // acquires that arrived while releasing
    };

    Step start_acquire(const Waiter &waiter, const std::string &disk, const std::string &resource,
                       uint32_t owner_pid, std::vector<std::string> aliases);
    // The lease here that holds `resource` as one of its aliases.
    const Lease *holding_as_alias(const std::string &resource) const;
    void index_aliases(const Lease &lease);
    // `owner` holds it, or waits for it.
    bool wanted_by(const Lease &lease, const std::string &owner) const;
    Step orphan_released(Lease lease, SanlockCall pending, const SanlockOutcome &outcome);
    Step remove_owner(RequestId id, const std::string &owner, Lease &lease);
    bool cancel_waiting(Step &step, const std::string &owner, const std::string &resource);
    void grant(Step &step, Lease &lease, const std::vector<Waiter> &waiters);
    void finish_release_part(Step &step, RequestId id, std::optional<ApiError> error, const std::string &resource);
    ApiError held_error(const Lease &lease, const std::string &disk) const;

    uint32_t host_id_;
    LockspaceState lockspace_state_ = LockspaceState::Absent;
    std::map<std::string, Lease> leases_;  // by resource; ordered so listings are stable
    std::map<std::string, SanlockCall> pending_;
    std::map<RequestId, MultiRelease> multi_;
    std::map<std::string, std::map<std::string, LeaseMode>> claims_;  // resource -> owner -> mode
    bool redirecting_ = false;  // acquire() is following a name to the lease holding it as an alias
    std::map<std::string, std::string> alias_index_;  // alias resource -> its lease's resource (may be stale)
    LeaseVersions taken_;  // resource -> version this host last took it at
};

}  // namespace vmlease
