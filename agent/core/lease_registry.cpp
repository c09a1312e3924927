#include "lease_registry.hpp"

#include "owner_name.hpp"
#include "sanlock_codes.hpp"

#include "disk_path.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vmlease {

namespace {

bool has_owner(const Lease &l, const std::string &owner) {
    return std::find(l.owners.begin(), l.owners.end(), owner) != l.owners.end();
}

}  // namespace

const char *to_string(LockspaceState s) {
    switch (s) {
    case LockspaceState::Absent: return "absent";
    case LockspaceState::Joining: return "joining";
    case LockspaceState::Joined: return "joined";
    case LockspaceState::Failed: return "failed";
    case LockspaceState::Rejoining: return "rejoining";
    }
    return "absent";
}

const Lease *LeaseRegistry::find(const std::string &resource) const {
    auto it = leases_.find(resource);
    return it == leases_.end() ? nullptr : &it->second;
}

ApiError LeaseRegistry::held_error(const Lease &lease, const std::string &disk) const {
    std::string who = lease.owners.empty() ? "another request" : "owner " + join_owners(lease.owners);
    return {ErrorKind::LeaseHeld, "disk " + disk + " is held on this host (host id " + std::to_string(host_id_) +
                                      ") by " + who + " in " + to_string(lease.mode) + " mode"};
}

bool LeaseRegistry::wanted_by(const Lease &lease, const std::string &owner) const {
    if (has_owner(lease, owner))
        return true;
    auto p = pending_.find(lease.resource);
    if (p == pending_.end())
        return false;
    for (const auto *list : {&p->second.acquirers, &p->second.after_release})
        for (const auto &w : *list)
            if (w.owner == owner)
                return true;
    return false;
}

const Lease *LeaseRegistry::holding_as_alias(const std::string &resource) const {
    auto it = alias_index_.find(resource);
    if (it == alias_index_.end())
        return nullptr;
    const Lease *lease = find(it->second);
    if (!lease)
        return nullptr;  // a stale entry: that lease is gone
    for (const auto &a : lease->aliases)
        if (lease_resource_name(a) == resource)
            return lease;
    return nullptr;
}

void LeaseRegistry::index_aliases(const Lease &lease) {
    for (const auto &a : lease.aliases)
        alias_index_[lease_resource_name(a)] = lease.resource;
    // Entries of leases gone since are skipped on lookup; rebuilt before
    // they could outnumber the leases.
    if (alias_index_.size() > 2 * leases_.size() + 64) {
        alias_index_.clear();
        for (const auto &[r, l] : leases_)
            for (const auto &al : l.aliases)
                alias_index_[lease_resource_name(al)] = r;
    }
}

Step LeaseRegistry::acquire(RequestId id, const std::string &owner, const std::string &disk,
                            const std::string &resource, LeaseMode mode, uint32_t owner_pid, bool may_adopt,
                            const std::vector<std::string> &aliases, const LeaseVersions &pins) {
    Step step;
    auto fail = [&](ErrorKind k, std::string msg) {
        // Held on this host (by another owner or request): this host is the holder.
        std::vector<uint64_t> holders;
        if (k == ErrorKind::LeaseHeld)
            holders.push_back(host_id_);
        step.replies.push_back({id, ApiError{k, std::move(msg)}, resource, std::move(holders)});
        return std::move(step);
    };
    if (lockspace_state_ != LockspaceState::Joined)
        return fail(ErrorKind::LockspaceUnavailable,
                    std::string("the lockspace is ") + to_string(lockspace_state_) + ", not joined; try again later");

    if (auto c = claims_.find(resource); c != claims_.end())
        for (const auto &[claimant, claimed_mode] : c->second)
            if (claimant != owner && !(mode == LeaseMode::Shared && claimed_mode == LeaseMode::Shared))
                return fail(ErrorKind::LeaseHeld, "disk " + disk + " is claimed on this host (host id " +
                                                      std::to_string(host_id_) + ") by machine " + claimant +
                                                      ", which is still trying to take its lease");

    // One disk, one lease on this host: a name of it that another lease
    // here holds as an alias is that lease, for its owner as for anyone
    // else (e.g. a lease kept from before an upgrade, asked for by its old
    // name while the identity's lease holds that name).
    if (const Lease *other = holding_as_alias(resource); other && other->resource != resource && !redirecting_) {
        std::string other_disk = other->disk, other_resource = other->resource;
        redirecting_ = true;  // once: two leases naming each other must not send it round for good
        Step redirected = acquire(id, owner, other_disk, other_resource, mode, owner_pid, may_adopt, {}, pins);
        redirecting_ = false;
        return redirected;
    }
    std::vector<std::string> taken;
    for (const auto &alias : aliases) {
        std::string r = lease_resource_name(alias);
        const Lease *other = find(r);
        if (!other)
            other = holding_as_alias(r);
        if (r == resource || (other && other->resource == resource) ||
            std::find(taken.begin(), taken.end(), alias) != taken.end())
            continue;  // the same lease
        if (other && wanted_by(*other, owner))
            continue;  // this owner holds (or is taking) that name already, e.g. a lease kept from before an upgrade
        if (other && other->state == LeaseState::Releasing && other->owners.empty())
            return fail(ErrorKind::Failed, "disk " + disk + " is also named " + alias +
                                               ", whose lease this host is giving back; try again shortly");
        if (other)
            return fail(ErrorKind::LeaseHeld, "disk " + disk + " is also named " + alias + ", held on this host (host id " +
                                                  std::to_string(host_id_) + ") by " +
                                                  (other->owners.empty() ? "another request" : "owner " + join_owners(other->owners)));
        if (taken.size() < kMaxAliases)
            taken.push_back(alias);
    }

    auto it = leases_.find(resource);
    if (it == leases_.end()) {
        if (leases_.size() >= kMaxLeases)
            return fail(ErrorKind::LimitsExceeded, "this host already tracks " + std::to_string(kMaxLeases) + " leases");
        return start_acquire({id, owner, mode, may_adopt, owner_pid, taken, pins}, disk, resource, owner_pid, taken);
    }

    Lease &lease = it->second;
    switch (lease.state) {
    case LeaseState::Held:
        if (has_owner(lease, owner)) {
            if (lease.mode == mode) {
                step.replies.push_back({id, std::nullopt, resource});
                return step;
            }
            return fail(ErrorKind::LeaseHeld, "owner " + owner + " already holds " + disk + " in " +
                                                  to_string(lease.mode) + " mode; release it first");
        }
        if (mode == LeaseMode::Shared && lease.mode == LeaseMode::Shared) {
            lease.owners.push_back(owner);
            step.replies.push_back({id, std::nullopt, resource});
            step.lease_changes.push_back({LeaseChange::Kind::Acquired, owner, lease});
            return step;
        }
        return fail(ErrorKind::LeaseHeld, held_error(lease, disk).message);
    case LeaseState::Acquiring: {
        SanlockCall &pending = pending_[resource];
        bool compatible = lease.mode == mode && std::all_of(pending.acquirers.begin(), pending.acquirers.end(),
                                                            [&](const Waiter &w) {
                                                                return w.owner == owner || mode == LeaseMode::Shared;
                                                            });
        if (!compatible && may_adopt && !pending.adopting) {
            // The owner asking first may be refused (an orphan it is not
            // entitled to); this one may be entitled: wait for sanlock.
            pending.acquirers.push_back({id, owner, mode, may_adopt, owner_pid, aliases, pins});
            return step;
        }
        if (!compatible) {
            std::vector<std::string> owners;
            for (const auto &w : pending.acquirers)
                owners.push_back(w.owner);
            return fail(ErrorKind::LeaseHeld, "disk " + disk + " is being acquired on this host by owner " +
                                                  join_owners(owners) + " in " + to_string(lease.mode) + " mode");
        }
        pending.acquirers.push_back({id, owner, mode, may_adopt, owner_pid, aliases, pins});
        return step;
    }
    case LeaseState::Releasing:
        // The last owner is letting go; take it again once sanlock has released it.
        if (lease.disk.empty())
            lease.disk = disk;  // an orphan being released: its disk was not known
        pending_[resource].after_release.push_back({id, owner, mode, may_adopt, owner_pid, aliases, pins});
        return step;
    }
    return step;
}

void LeaseRegistry::claim(const std::string &resource, const std::string &owner, LeaseMode mode) {
    auto &claimants = claims_[resource];
    // The first claimant wins: two machines here that both want a disk
    // exclusively must not refuse each other for good.
    for (const auto &[other, other_mode] : claimants)
        if (other != owner && !(mode == LeaseMode::Shared && other_mode == LeaseMode::Shared))
            return;
    claimants[owner] = mode;
}

void LeaseRegistry::unclaim(const std::string &owner) {
    for (auto it = claims_.begin(); it != claims_.end();) {
        it->second.erase(owner);
        it = it->second.empty() ? claims_.erase(it) : std::next(it);
    }
}

void LeaseRegistry::unclaim(const std::string &owner, const std::string &resource) {
    auto it = claims_.find(resource);
    if (it == claims_.end())
        return;
    it->second.erase(owner);
    if (it->second.empty())
        claims_.erase(it);
}

Step LeaseRegistry::start_acquire(const Waiter &waiter, const std::string &disk, const std::string &resource,
                                  uint32_t owner_pid, std::vector<std::string> aliases) {
    Step step;
    Lease lease;
    lease.disk = disk;
    lease.resource = resource;
    lease.aliases = std::move(aliases);
    lease.mode = waiter.mode;
    lease.state = LeaseState::Acquiring;
    leases_[resource] = lease;
    index_aliases(lease);
    SanlockCall &pending = pending_[resource];
    pending.acquirers.push_back(waiter);
    pending.adopting = waiter.may_adopt;
    step.sanlock_effects.push_back(acquire_effect(lease, owner_pid, waiter.may_adopt, waiter.pins));
    return step;
}

// The lease is held: every waiter becomes an owner and gets its reply.
void LeaseRegistry::grant(Step &step, Lease &lease, const std::vector<Waiter> &waiters) {
    lease.state = LeaseState::Held;
    for (const auto &w : waiters) {
        if (!has_owner(lease, w.owner)) {
            lease.owners.push_back(w.owner);
            step.lease_changes.push_back({LeaseChange::Kind::Acquired, w.owner, lease});
        }
        step.replies.push_back({w.request, std::nullopt, lease.resource});
    }
}

Step LeaseRegistry::acquire_done(const std::string &resource, const SanlockOutcome &outcome) {
    Step step;
    auto it = leases_.find(resource);
    if (it == leases_.end() || it->second.state != LeaseState::Acquiring)
        return step;  // nothing waits for it (cannot happen: only acquire() starts an acquire)
    Lease &lease = it->second;
    SanlockCall &pending = pending_[resource];
    auto waiters = std::move(pending.acquirers);
    pending.acquirers.clear();
    if (outcome.rv == 0 && outcome.io_errno == 0)
        for (const auto &[name, version] : outcome.versions)
            if (version.lver)
                taken_[name] = version;

    if (outcome.rv == -EEXIST && outcome.held_by_owner_process) {
        // The machine's own sanlock client (libvirt's plugin) holds it for
        // the machine: protected already, not a conflict, and not ours to release.
        if (waiters.empty()) {
            leases_.erase(it);
            return step;
        }
        lease.external = true;
        lease.aliases.clear();  // none of them taken: nothing of ours to list or give back
        grant(step, lease, waiters);
        pending_.erase(resource);
        return step;
    }
    if (outcome.rv == 0 && !outcome.owner_held_aliases.empty()) {
        // The machine's own sanlock client holds these names: not ours to
        // hold or give back.
        auto &held = outcome.owner_held_aliases;
        lease.aliases.erase(std::remove_if(lease.aliases.begin(), lease.aliases.end(),
                                           [&](const std::string &a) {
                                               return std::find(held.begin(), held.end(), lease_resource_name(a)) !=
                                                      held.end();
                                           }),
                            lease.aliases.end());
    }
    if (outcome.rv == 0 && waiters.empty()) {
        // Everyone who wanted it let go while sanlock was busy: give it back.
        lease.state = LeaseState::Releasing;
        step.sanlock_effects.push_back(release_effect(lease));
        return step;
    }
    if (outcome.rv == 0 && outcome.io_errno == 0) {
        lease.versions = outcome.versions;
        // Waiters that queued up while sanlock was asked in the hope of an
        // orphan (incompatible with the first) are refused now.
        std::vector<Waiter> granted, refused;
        for (auto &w : waiters)
            (w.mode == lease.mode && (w.owner == waiters.front().owner || w.mode == LeaseMode::Shared) ? granted
                                                                                                      : refused)
                .push_back(w);
        grant(step, lease, granted);
        for (const auto &w : refused)
            step.replies.push_back({w.request, held_error(lease, lease.disk), resource, {host_id_}});
        pending_.erase(resource);  // only acquirers wait on an acquiring lease
        return step;
    }
    if (outcome.rv == -EUCLEAN && outcome.io_errno == 0 && pending.adopting) {
        // sanlock refused to hand over its orphan even so: it holds it in
        // the other mode (shared/exclusive). Asking again would loop.
        ApiError err{ErrorKind::SanlockFailure,
                     "disk " + lease.disk + " is held on this host as an orphan of an earlier vmleased in a mode " +
                         "other than " + to_string(lease.mode) + "; it cannot be taken over in this mode"};
        for (const auto &w : waiters)
            step.replies.push_back({w.request, err, resource});
        leases_.erase(it);
        pending_.erase(resource);
        return step;
    }
    if (outcome.rv == -EUCLEAN && outcome.io_errno == 0) {
        // This host holds it as an orphan of an earlier vmleased. Those
        // entitled to it take it over; everyone else is refused.
        std::vector<Waiter> entitled, others;
        for (auto &w : waiters)
            (w.may_adopt ? entitled : others).push_back(w);
        ApiError err{ErrorKind::LeaseHeld,
                     "disk " + lease.disk + " is held on this host (host id " + std::to_string(host_id_) +
                         ") by a lease an earlier vmleased took for another owner; it is given back only to that "
                         "owner. If nothing uses the disk any more, an administrator releases it with ReleaseDisk "
                         "(vmleasectl release)"};
        for (const auto &w : others)
            step.replies.push_back({w.request, err, resource, {host_id_}});
        if (!entitled.empty()) {
            pending.acquirers = entitled;
            pending.adopting = true;
            lease.mode = entitled.front().mode;
            step.sanlock_effects.push_back(acquire_effect(lease, entitled.front().owner_pid, true, entitled.front().pins));
            return step;
        }
        leases_.erase(it);
        pending_.erase(resource);
        return step;
    }

    ApiError err;
    if (outcome.io_errno != 0) {
        err = {ErrorKind::Failed, "cannot acquire the lease for " + lease.disk + ": " +
                                      (outcome.detail.empty() ? std::strerror(outcome.io_errno) : outcome.detail)};
    } else if (outcome.rv == -EEXIST) {
        err = {ErrorKind::LeaseHeld, "disk " + lease.disk + " is held on this host (host id " +
                                         std::to_string(host_id_) + ") by another sanlock client"};
    } else if (sanlock_rv::held_by_other_host(outcome.rv)) {
        std::string holders;
        for (auto h : outcome.holder_host_ids)
            holders += (holders.empty() ? "" : ", ") + std::to_string(h);
        err = {ErrorKind::LeaseHeld,
               "disk " + lease.disk + " is held by " +
                   (holders.empty() ? std::string("another host") : "host id " + holders) + " (sanlock " +
                   std::to_string(outcome.rv) + ")"};
    } else if (outcome.rv == sanlock_rv::kAcquireLver) {
        std::string holders;
        for (auto h : outcome.holder_host_ids)
            holders += (holders.empty() ? "" : ", ") + std::to_string(h);
        err = {ErrorKind::LeaseStale,
               "the lease of disk " + lease.disk + " was taken by " +
                   (holders.empty() ? std::string("another host (free now)") : "host id " + holders) +
                   " since this owner last held it: its version moved on (" +
                   (outcome.detail.empty() ? "sanlock " + std::to_string(outcome.rv) : outcome.detail) + ")"};
    } else if (outcome.rv == sanlock_rv::kAcquireLockspace || outcome.rv == -ENOSPC) {
        err = {ErrorKind::LockspaceUnavailable, "sanlock does not have the lockspace joined (" +
                                                    std::to_string(outcome.rv) + ")"};
    } else {
        err = {ErrorKind::SanlockFailure, "sanlock could not acquire the lease for " + lease.disk + ": " +
                                              (outcome.detail.empty() ? std::to_string(outcome.rv) : outcome.detail)};
    }
    std::vector<uint64_t> holders;
    if (outcome.rv == -EEXIST && outcome.io_errno == 0)
        holders.push_back(host_id_);
    else if (err.kind == ErrorKind::LeaseHeld || err.kind == ErrorKind::LeaseStale)
        holders = outcome.holder_host_ids;
    for (const auto &w : waiters)
        step.replies.push_back({w.request, err, resource, holders});
    leases_.erase(it);
    pending_.erase(resource);
    return step;
}

// An owner whose acquire is still with sanlock (or queued behind a release)
// lets go: its acquire is answered, and the lease is given back when it arrives.
bool LeaseRegistry::cancel_waiting(Step &step, const std::string &owner, const std::string &resource) {
    auto p = pending_.find(resource);
    if (p == pending_.end())
        return false;
    bool found = false;
    for (auto *list : {&p->second.acquirers, &p->second.after_release}) {
        for (auto w = list->begin(); w != list->end();) {
            if (w->owner != owner) {
                ++w;
                continue;
            }
            step.replies.push_back(
                {w->request, ApiError{ErrorKind::Failed, "released by owner " + owner + " before it was acquired"},
                 resource});
            w = list->erase(w);
            found = true;
        }
    }
    return found;
}

Step LeaseRegistry::release(RequestId id, const std::string &owner, const std::string &resource) {
    Step step;
    if (cancel_waiting(step, owner, resource) &&
        (leases_.find(resource) == leases_.end() || !has_owner(leases_.at(resource), owner))) {
        step.replies.push_back({id, std::nullopt, resource});
        return step;
    }
    auto it = leases_.find(resource);
    if (it == leases_.end() && lockspace_state_ == LockspaceState::Joined) {
        // Nobody here holds it; sanlock may still, as an orphan nobody
        // could be told about (a lost state file): give that back.
        Lease lease;
        lease.resource = resource;
        lease.state = LeaseState::Releasing;
        leases_[resource] = lease;
        multi_[id] = MultiRelease{1, std::nullopt};
        pending_[resource].releasers.push_back({id, owner});
        step.sanlock_effects.push_back(ReleaseEffect{resource, true});
        return step;
    }
    if (it == leases_.end() || !has_owner(it->second, owner)) {
        step.replies.push_back({id, ApiError{ErrorKind::NoSuchLease, "owner " + owner + " holds no lease on that disk"},
                                resource});
        return step;
    }
    multi_[id] = MultiRelease{1, std::nullopt};
    return remove_owner(id, owner, it->second);
}

Step LeaseRegistry::release_owner(RequestId id, const std::string &owner) {
    Step step;
    bool cancelled = false;
    std::vector<std::string> waiting_on;
    for (const auto &[res, p] : pending_)
        waiting_on.push_back(res);
    for (const auto &res : waiting_on)
        cancelled = cancel_waiting(step, owner, res) || cancelled;
    std::vector<std::string> resources;
    for (const auto &[res, lease] : leases_)
        if (has_owner(lease, owner))
            resources.push_back(res);
    if (resources.empty() && cancelled) {
        step.replies.push_back({id, std::nullopt, ""});
        return step;
    }
    if (resources.empty()) {
        step.replies.push_back({id, ApiError{ErrorKind::NoSuchOwner, "owner " + owner + " holds no lease"}, ""});
        return step;
    }
    multi_[id] = MultiRelease{resources.size(), std::nullopt};
    for (const auto &res : resources)
        step.append(remove_owner(id, owner, leases_.at(res)));
    return step;
}

// Drop one owner; the sanlock lease is released only when nobody is left.
Step LeaseRegistry::remove_owner(RequestId id, const std::string &owner, Lease &lease) {
    Step step;
    if (lease.state == LeaseState::Releasing) {
        // Already on its way out (a second release for the same owner): answer with the first.
        pending_[lease.resource].releasers.push_back({id, owner});
        return step;
    }
    if (lease.owners.size() > 1) {
        lease.owners.erase(std::find(lease.owners.begin(), lease.owners.end(), owner));
        step.lease_changes.push_back({LeaseChange::Kind::Released, owner, lease});
        finish_release_part(step, id, std::nullopt, lease.resource);
        return step;
    }
    if (lease.external) {
        // Not ours in sanlock: forget it, the VM's own client keeps holding it.
        Lease gone = lease;
        gone.owners.clear();
        step.lease_changes.push_back({LeaseChange::Kind::Released, owner, gone, true});
        std::string resource = lease.resource;
        leases_.erase(resource);
        finish_release_part(step, id, std::nullopt, resource);
        return step;
    }
    lease.state = LeaseState::Releasing;
    pending_[lease.resource].releasers.push_back({id, owner});
    step.sanlock_effects.push_back(release_effect(lease));
    return step;
}

void LeaseRegistry::finish_release_part(Step &step, RequestId id, std::optional<ApiError> error,
                                        const std::string &resource) {
    auto it = multi_.find(id);
    if (it == multi_.end())
        return;
    if (error && !it->second.first_error)
        it->second.first_error = std::move(error);
    if (--it->second.remaining > 0)
        return;
    step.replies.push_back({id, it->second.first_error, resource});
    multi_.erase(it);
}

Step LeaseRegistry::release_done(const std::string &resource, const SanlockOutcome &outcome) {
    Step step;
    auto it = leases_.find(resource);
    if (it == leases_.end() || it->second.state != LeaseState::Releasing)
        return step;
    Lease &lease = it->second;
    SanlockCall pending = std::move(pending_[resource]);
    pending_.erase(resource);
    if (lease.owners.empty()) {
        Lease orphan = std::move(lease);
        leases_.erase(it);
        return orphan_released(std::move(orphan), std::move(pending), outcome);
    }

    // sanlock takes the lease off the connection before it writes the
    // release to disk, so whatever it answers the connection no longer holds
    // it (a failed disk write leaves it to expire). Only when the connection
    // itself broke is it still held, as an orphan of this host.
    if (!sanlock_rv::connection_lost(outcome.rv)) {
        Lease gone = lease;
        gone.owners.clear();
        for (size_t i = 0; i < pending.releasers.size(); i++) {
            const auto &r = pending.releasers[i];
            if (i == 0)
                step.lease_changes.push_back({LeaseChange::Kind::Released, r.owner, gone, true});
            finish_release_part(step, r.request, std::nullopt, resource);
        }
        leases_.erase(it);
        for (const auto &w : pending.after_release)
            step.append(
                acquire(w.request, w.owner, gone.disk, resource, w.mode, w.owner_pid, w.may_adopt, w.aliases, w.pins));
        return step;
    }

    // The lease is still held by sanlock: keep it, and keep the owners that wanted it gone.
    lease.state = LeaseState::Held;
    ApiError err{ErrorKind::SanlockFailure, "sanlock could not release the lease for " + lease.disk + ": " +
                                                (outcome.detail.empty() ? std::to_string(outcome.rv) : outcome.detail)};
    for (const auto &r : pending.releasers)
        finish_release_part(step, r.request, err, resource);
    for (const auto &w : pending.after_release)
        step.append(
            acquire(w.request, w.owner, lease.disk, resource, w.mode, w.owner_pid, w.may_adopt, w.aliases, w.pins));
    return step;
}

// An orphan of this host given back (after a restart, or on an
// administrator's ReleaseDisk). Nobody was told it was held, so nothing is
// announced; `outcome.rv` is how many orphans sanlock released.
Step LeaseRegistry::orphan_released(Lease lease, SanlockCall pending, const SanlockOutcome &outcome) {
    Step step;
    std::optional<ApiError> error;
    if (outcome.rv < 0)
        error = ApiError{ErrorKind::SanlockFailure,
                         "sanlock could not release the lease: " +
                             (outcome.detail.empty() ? std::to_string(outcome.rv) : outcome.detail)};
    else if (outcome.rv == 0)
        error = ApiError{ErrorKind::NoSuchLease, "nobody holds a lease on that disk on this host"};
    for (const auto &r : pending.releasers)
        finish_release_part(step, r.request, error, lease.resource);
    for (const auto &w : pending.after_release)
        step.append(acquire(w.request, w.owner, lease.disk, lease.resource, w.mode, w.owner_pid, w.may_adopt,
                            w.aliases, w.pins));
    return step;
}

LeaseVersion LeaseRegistry::last_taken(const std::string &resource) const {
    auto it = taken_.find(resource);
    return it == taken_.end() ? LeaseVersion{} : it->second;
}

std::set<std::string> LeaseRegistry::owners() const {
    std::set<std::string> out;
    for (const auto &[resource, lease] : leases_)
        out.insert(lease.owners.begin(), lease.owners.end());
    return out;
}

Step LeaseRegistry::release_orphan(const std::string &resource, const std::string &disk,
                                   const std::vector<std::string> &aliases) {
    Step step;
    if (leases_.count(resource))
        return step;  // someone wants it after all: it is adopted instead
    Lease lease;
    lease.resource = resource;
    lease.disk = disk;
    lease.aliases = aliases;
    lease.state = LeaseState::Releasing;
    leases_[resource] = lease;
    index_aliases(lease);
    step.sanlock_effects.push_back(release_effect(lease, true));
    return step;
}

Step LeaseRegistry::all_leases_lost() {
    Step step;
    for (auto &[resource, lease] : leases_) {
        Lease gone = lease;
        gone.owners.clear();
        for (size_t i = 0; i < lease.owners.size(); i++)
            step.lease_changes.push_back({LeaseChange::Kind::Released, lease.owners[i], gone, i + 1 == lease.owners.size()});
        auto p = pending_.find(resource);
        if (p == pending_.end())
            continue;
        ApiError err{ErrorKind::SanlockFailure, "the sanlock daemon stopped; the lease for " + lease.disk + " is gone"};
        for (const auto &w : p->second.acquirers)
            step.replies.push_back({w.request, err, resource});
        for (const auto &w : p->second.after_release)
            step.replies.push_back({w.request, err, resource});
        for (const auto &r : p->second.releasers)
            finish_release_part(step, r.request, std::nullopt, resource);
    }
    leases_.clear();
    pending_.clear();
    return step;
}

std::vector<SavedLease> LeaseRegistry::saved_leases() const {
    std::vector<SavedLease> out;
    out.reserve(leases_.size());
    for (const auto &[resource, lease] : leases_) {
        if (lease.external)
            continue;  // the machine's own sanlock client holds it, not us
        SavedLease s{resource, lease.disk, lease.mode, {}, lease.aliases, lease.versions};
        if (lease.state != LeaseState::Releasing)
            s.owners = lease.owners;
        auto p = pending_.find(resource);
        if (p != pending_.end())
            for (const auto *list : {&p->second.acquirers, &p->second.after_release})
                for (const auto &w : *list)
                    if (std::find(s.owners.begin(), s.owners.end(), w.owner) == s.owners.end())
                        s.owners.push_back(w.owner);
        out.push_back(std::move(s));
    }
    return out;
}

std::optional<std::string> LeaseRegistry::lease_to_release(const std::string &owner,
                                                           const std::vector<std::string> &names) const {
    for (const auto &name : names)
        if (const Lease *held = find(lease_resource_name(name)); held && has_owner(*held, owner))
            return held->resource;
    if (!names.empty() && find(lease_resource_name(names.front())))
        return lease_resource_name(names.front());
    return std::nullopt;
}

const Lease *LeaseRegistry::find_device(const std::string &name, const std::string &identity) const {
    if (const Lease *lease = find(lease_resource_name(identity.empty() ? name : identity)))
        return lease;
    return find(lease_resource_name(name));
}

Step LeaseRegistry::inspected(RequestId id, const std::string &resource, const InspectOutcome &out) const {
    Step step;
    if (out.rv == -ENOENT) {
        step.replies.push_back(
            {id, ApiError{ErrorKind::NoSuchLease, "no lease file " + out.lease_file + " exists for that disk"}, resource});
        return step;
    }
    if (out.rv < 0) {
        step.replies.push_back({id,
                                ApiError{ErrorKind::SanlockFailure,
                                         "cannot read the owners of " + out.lease_file + ": " + out.detail},
                                resource});
        return step;
    }
    Inspection inspection{out.lease_file, {}, out.version};
    for (const auto &o : out.owners) {
        bool here = o.host_id == host_id_;
        std::string state = o.host_state;
        if (here && state == "unknown" && lockspace_state_ == LockspaceState::Joined)
            state = "live";
        inspection.holders.push_back({o.host_id, o.generation, state, here});
    }
    step.replies.push_back({id, std::nullopt, resource});
    step.replies.back().inspection = std::move(inspection);
    return step;
}

Step LeaseRegistry::cleaned_up(RequestId id, const CleanupResult &result) {
    Step step;
    if (!result.errors.empty()) {
        std::string message = "could not clean up " + std::to_string(result.errors.size()) + " lease file(s): ";
        for (size_t i = 0; i < result.errors.size() && i < 5; i++)
            message += (i ? "; " : "") + result.errors[i];
        message += "; removed " + std::to_string(result.removed.size()) + " other(s)";
        step.replies.push_back({id, ApiError{ErrorKind::Failed, message}, ""});
        return step;
    }
    step.replies.push_back({id, std::nullopt, ""});
    step.replies.back().removed = result.removed;
    return step;
}

Step LeaseRegistry::set_lockspace_state(LockspaceState state) {
    Step step;
    if (state == lockspace_state_)
        return step;
    lockspace_state_ = state;
    step.lockspace_state_changed = true;
    return step;
}

}  // namespace vmlease
