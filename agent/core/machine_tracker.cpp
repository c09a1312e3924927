#include "machine_tracker.hpp"

#include "disk_path.hpp"
#include "lock_failure_effect.hpp"
#include "owner_name.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <csignal>
#include <set>

namespace vmlease {
namespace {

bool glob_matches(const std::string &pattern, const std::string &s) { return fnmatch(pattern.c_str(), s.c_str(), 0) == 0; }

bool any_matches(const std::vector<std::string> &patterns, const std::string &s) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string &p) { return glob_matches(p, s); });
}

}  // namespace

const char *to_string(MachineDisk::State s) {
    switch (s) {
    case MachineDisk::State::Waiting: return "waiting-for-device";
    case MachineDisk::State::Acquiring: return "acquiring";
    case MachineDisk::State::Held: return "held";
    case MachineDisk::State::Conflict: return "conflict";
    case MachineDisk::State::Failed: return "failed";
    case MachineDisk::State::Released: return "released";
    case MachineDisk::State::Unidentified: return "unidentified";
    case MachineDisk::State::Stale: return "stale";
    }
    return "failed";
}

std::string machine_state(const Machine &m) {
    if (m.reserved)
        return "reserved";
    if (m.stale || std::any_of(m.disks.begin(), m.disks.end(),
                               [](const MachineDisk &d) { return d.state == MachineDisk::State::Stale; }))
        return "stale";
    if (m.frozen)
        return "frozen";
    bool acquiring = false, failed = false;
    for (const auto &d : m.disks) {
        if (d.state == MachineDisk::State::Conflict)
            return "conflict";
        acquiring = acquiring || d.state == MachineDisk::State::Acquiring;
        failed = failed || d.state == MachineDisk::State::Failed || d.state == MachineDisk::State::Unidentified;
    }
    return failed ? "unprotected" : acquiring ? "protecting" : "running";
}

bool machine_protected(const Machine &m) {
    return std::all_of(m.disks.begin(), m.disks.end(),
                       [](const MachineDisk &d) { return d.state == MachineDisk::State::Held; });
}

std::string unprotected_reason(const Machine &m) {
    for (const auto &d : m.disks)
        if (d.state != MachineDisk::State::Held)
            return "disk " + d.disk + ": " + to_string(d.state) + (d.error.empty() ? "" : ": " + d.error);
    return "";
}

uint32_t retry_delay_ms(uint32_t attempts) {
    if (attempts <= 1)
        return kRetryFirstMs;
    if (attempts > 16)
        return kRetryMaxMs;
    return std::min<uint64_t>(uint64_t(kRetryFirstMs) << (attempts - 1), kRetryMaxMs);
}

namespace {
// A disk it may be writing is not held, and neither on_lockfailure (applied
// to it in this lock failure) nor a stop under way covers it.
bool is_exposed(const Machine &m) {
    if (m.reserved || m.terminating)
        return false;
    return std::any_of(m.disks.begin(), m.disks.end(), [&](const MachineDisk &d) {
        if (d.awaits_lockspace)
            return false;
        // Stale and paused: it stays paused (nothing of it runs to write);
        // stale and running (on_lockfailure ignore): on_unprotected applies.
        if (d.state == MachineDisk::State::Stale)
            return !m.frozen && !m.stopped;
        // A first acquire counts too (a hung lease directory must not keep
        // a VM unprotected unnoticed), except with a grace of 0, which means
        // "at the first failure".
        return d.state == MachineDisk::State::Failed || d.state == MachineDisk::State::Conflict ||
               d.state == MachineDisk::State::Unidentified ||
               (d.state == MachineDisk::State::Acquiring && (d.attempts > 0 || m.unprotected_grace > 0));
    });
}

// A disk the state file names for a machine (held before the restart):
// the machine's own, so an orphan of it may be adopted.
MachineDisk restored_disk(const std::string &disk, const std::string &resource, const std::vector<std::string> &aliases,
                          LeaseMode mode, const LeaseVersions &versions) {
    MachineDisk d;
    d.disk = disk;
    d.resource = resource;
    d.aliases = aliases;
    d.mode = mode;
    d.source = MachineDisk::Source::Restored;
    d.may_adopt = true;
    d.versions = versions;
    return d;
}

// An administrator let it go: it stays released (no retry) until the
// machine ends.
void mark_released(MachineDisk &d) {
    if (d.state == MachineDisk::State::Stale)
        return;  // stale it stays: its lease is another's now, nothing to release
    d.state = MachineDisk::State::Released;
    d.error.clear();
    d.retry_token = 0;
    d.awaits_lockspace = false;
}

// Waiting for a lease it does not have (or a name for its disk): thawing
// must wait too.
bool is_pending(const Machine &m) {
    return std::any_of(m.disks.begin(), m.disks.end(), [](const MachineDisk &d) {
        return d.state == MachineDisk::State::Failed || d.state == MachineDisk::State::Conflict ||
               d.state == MachineDisk::State::Acquiring || d.state == MachineDisk::State::Unidentified ||
               d.state == MachineDisk::State::Stale;
    });
}

}  // namespace

const DiskNamer &MachineTracker::lexical_namer() {
    static const LexicalDiskNamer namer;
    return namer;
}

const Machine *MachineTracker::find(const std::string &name) const {
    auto it = machines_.find(name);
    return it == machines_.end() ? nullptr : &it->second;
}

Step MachineTracker::machine_appeared(const MachineInfo &info) {
    Step step;
    // machined lists the host itself (".host", class "host"): not a machine
    // whose disks need protecting from other machines.
    if (info.machine_class == "host")
        return finish(std::move(step));
    size_t removal_changes = 0;
    if (auto old = machines_.find(info.name); old != machines_.end() && !old->second.reserved &&
                                               old->second.info.leader != 0 && info.leader != 0 &&
                                               old->second.info.leader != info.leader) {
        // Another machine under the same name (a VM's service restarted
        // before its removal reached us): the old one is gone, with all it
        // held and all that was decided about it (terminating, frozen).
        step.append(machine_gone(info.name));
        removal_changes = step.machine_changes.size();
    }
    auto [it, added] = machines_.try_emplace(info.name);
    Machine &m = it->second;
    bool was_reserved = m.reserved;
    m.info = info;
    m.reserved = false;
    if (!added && !was_reserved) {
        step.machine_changes.push_back({MachineChange::Kind::Updated, info.name});
        return finish(std::move(step));
    }
    m.on_lockfailure = config_->on_lockfailure;
    m.on_conflict = config_->on_conflict;
    m.on_unprotected = config_->on_unprotected;
    m.unprotected_grace = config_->unprotected_grace;
    m.resume_after_lockfailure = config_->resume_after_lockfailure;
    bool first_rule = true;
    for (const auto &rule : config_->machines) {
        if (!first_rule || !glob_matches(rule.match, info.name))
            continue;
        m.on_lockfailure = rule.on_lockfailure.value_or(m.on_lockfailure);
        m.on_conflict = rule.on_conflict.value_or(m.on_conflict);
        m.on_unprotected = rule.on_unprotected.value_or(m.on_unprotected);
        m.unprotected_grace = rule.unprotected_grace.value_or(m.unprotected_grace);
        m.resume_after_lockfailure = rule.resume_after_lockfailure.value_or(m.resume_after_lockfailure);
        first_rule = false;
    }
    if (!was_reserved)
        apply_saved(step, m);
    // The first rule that matches sets the actions; every matching rule adds disks.
    for (const auto &rule : config_->machines) {
        if (!glob_matches(rule.match, info.name) || !config_->auto_disk_leases)
            continue;
        for (const auto &d : rule.disks)
            if (d.mode != LeaseMode::None)
                step.append(want(m, d, MachineDisk::Source::Rule));
    }
    if (was_reserved)
        // Reservation disks refused before it started: it runs now, so they
        // are asked for again like any running machine's.
        for (auto &d : m.disks)
            if (d.state == MachineDisk::State::Failed && d.source == MachineDisk::Source::Reservation) {
                leases_.claim(d.resource, info.name, d.mode);
                d.attempts++;
                d.retry_token = next_token_++;
                step.retry_timers.push_back({info.name, d.disk, d.retry_token, retry_delay_ms(d.attempts)});
            }
    step.machine_changes.insert(step.machine_changes.begin() + static_cast<std::ptrdiff_t>(removal_changes),
                                {was_reserved ? MachineChange::Kind::Updated : MachineChange::Kind::Added, info.name});
    return finish(std::move(step));
}

Step MachineTracker::reserve(RequestId id, const std::string &owner, const std::vector<DiskRule> &disks,
                             uint32_t grace_seconds, bool restored) {
    Step step;
    auto fail = [&](ErrorKind kind, const std::string &message) {
        step.replies.push_back({id, ApiError{kind, message}, ""});
        return std::move(step);
    };
    if (machines_.count(owner))
        return fail(ErrorKind::Failed, "machine " + owner + " is already " +
                                           (machines_.at(owner).reserved ? "reserved" : "running") +
                                           "; release it first or use AcquireDisk");
    if (reservations_.size() >= kMaxReservations)
        return fail(ErrorKind::LimitsExceeded, std::to_string(kMaxReservations) + " reservations are already waiting");
    if (disks.size() > kMaxDisksPerMachine)
        return fail(ErrorKind::LimitsExceeded, "at most " + std::to_string(kMaxDisksPerMachine) + " disks per machine");

    Machine &m = machines_[owner];
    m.info.name = owner;
    m.reserved = true;
    m.on_lockfailure = config_->on_lockfailure;
    m.on_conflict = config_->on_conflict;
    step.machine_changes.push_back({MachineChange::Kind::Added, owner});
    Reservation &r = reservations_[owner];
    r.reply_to = id;
    r.grace_seconds = grace_seconds;
    for (const auto &d : disks) {
        if (d.mode == LeaseMode::None)
            continue;
        MachineDisk md;
        md.disk = d.path;
        md.resource = lease_resource_name(d.path);
        md.aliases = d.aliases;
        md.mode = d.mode;
        md.source = MachineDisk::Source::Reservation;
        md.may_adopt = restored;
        m.disks.push_back(md);
        r.outstanding++;
    }
    // Index-based: request_acquire may not keep references into m.disks.
    for (size_t i = 0; i < m.disks.size(); i++)
        step.append(request_acquire(m, m.disks[i]));
    if (r.outstanding == 0)
        step.append(finish_reservation(owner));
    return step;
}

// All of a reservation's acquires are answered: reply, and on failure give
// back what was taken so the reservation leaves nothing behind.
Step MachineTracker::finish_reservation(std::string owner) {
    Step step;
    auto rit = reservations_.find(owner);
    if (rit == reservations_.end())
        return step;
    Reservation r = rit->second;
    reservations_.erase(rit);
    auto mit = machines_.find(owner);
    if (!r.first_error) {
        step.replies.push_back({r.reply_to, std::nullopt, "", {}, owner});
        if (mit != machines_.end() && mit->second.reserved)
            step.grace_timers.push_back({owner, r.grace_seconds});
        return step;
    }
    if (mit != machines_.end() && !mit->second.reserved) {
        // The machine started meanwhile: the caller hears the error, and
        // what it runs on is kept (and retried), not rolled back.
        step.replies.push_back({r.reply_to, r.first_error, "", r.holders, owner});
        return step;
    }
    Rollback &rb = rollbacks_[r.reply_to];
    rb.reply = {r.reply_to, r.first_error, "", r.holders, owner};
    if (mit == machines_.end()) {
        step.replies.push_back(rb.reply);
        rollbacks_.erase(r.reply_to);
        return step;
    }
    Machine &m = mit->second;
    std::vector<MachineDisk> kept;
    for (const auto &d : m.disks) {
        if (d.source != MachineDisk::Source::Reservation) {
            kept.push_back(d);
            continue;
        }
        if (d.state == MachineDisk::State::Held) {
            RequestId id = next_id();
            requests_[id] = {owner, "", r.reply_to};
            rb.remaining++;
            step.append(leases_.release(id, owner, d.resource));
        }
    }
    if (rb.remaining == 0) {
        step.replies.push_back(rb.reply);
        rollbacks_.erase(r.reply_to);
    }
    m.disks = kept;
    if (m.reserved) {
        machines_.erase(mit);
        step.machine_changes.push_back({MachineChange::Kind::Removed, owner});
    } else {
        step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
    }
    return step;
}

Step MachineTracker::reservation_expired(std::string owner) {
    auto it = machines_.find(owner);
    if (it == machines_.end() || !it->second.reserved || reservations_.count(owner))
        return {};  // it appeared (or is gone, or is still being taken)
    return machine_gone(owner);
}

Step MachineTracker::want(Machine &m, const DiskRule &rule, MachineDisk::Source source) {
    DiskName name = rule.identity_is_path ? DiskNamer::named_by_path(rule.path) : namer_.canonical(rule.path);
    // Config validation makes rule paths absolute: Invalid is a lookup
    // that failed (EIO, EACCES, a hung automount). Fail closed: the disk
    // counts as unprotected and is looked up again.
    if (name.kind == DiskName::Kind::Invalid)
        name.kind = DiskName::Kind::Unidentified;
    return want_named(m, name, rule.path, rule.mode, source);
}

Step MachineTracker::want_named(Machine &m, const DiskName &name, const std::string &path, LeaseMode mode,
                                MachineDisk::Source source) {
    bool waiting = name.kind == DiskName::Kind::Absent;
    bool unidentified = name.kind == DiskName::Kind::Unidentified;
    const std::string &disk = waiting || unidentified ? path : name.value;
    for (const auto &d : m.disks)
        if (d.disk == disk)
            return {};  // already wanted (a rule and discovery may name the same disk)
    if (m.disks.size() >= kMaxDisksPerMachine)
        return {};
    MachineDisk d;
    d.disk = disk;
    d.mode = mode;
    d.source = source;
    d.may_adopt = true;  // rules, discovery, the state file: the machine's own
    if (waiting || unidentified) {
        // Unidentified: no lease can protect it (fail closed); it counts as
        // unprotected, so on_unprotected applies after the grace. A rule's
        // disk is looked up again with back-off (a discovered one at every
        // scan, a waiting one when a device appears).
        d.state = waiting ? MachineDisk::State::Waiting : MachineDisk::State::Unidentified;
        d.error = unidentified ? name.value : "";
        m.disks.push_back(d);
        Step step;
        step.machine_changes.push_back({MachineChange::Kind::Updated, m.info.name});
        if (unidentified && source == MachineDisk::Source::Rule && !m.terminating) {
            MachineDisk &added = m.disks.back();
            added.attempts++;
            added.retry_token = next_token_++;
            step.retry_timers.push_back({m.info.name, added.disk, added.retry_token, retry_delay_ms(added.attempts)});
        }
        return step;
    }
    d.resource = lease_resource_name(disk);
    d.aliases = name.aliases;
    m.disks.push_back(d);
    return request_acquire(m, m.disks.back());
}

Step MachineTracker::device_appeared() {
    Step step;
    for (auto &[name, m] : machines_) {
        // Index-based: want_named appends to m.disks.
        for (size_t i = 0; i < m.disks.size(); i++) {
            if (m.disks[i].state != MachineDisk::State::Waiting)
                continue;
            DiskName now = namer_.canonical(m.disks[i].disk);
            if (now.kind == DiskName::Kind::Absent)
                continue;
            if (now.kind == DiskName::Kind::Invalid)
                now.kind = DiskName::Kind::Unidentified;  // there now, and cannot be named: fail closed
            MachineDisk waiting = m.disks[i];
            m.disks.erase(m.disks.begin() + static_cast<std::ptrdiff_t>(i));
            step.append(want_named(m, now, waiting.disk, waiting.mode, waiting.source));
            i--;  // the disk now at i has not been looked at yet
        }
    }
    return finish(std::move(step));
}

// Once held, an exclusive lease is taken back only if nobody took it since.
// (A shared lease's version grows with every host that joins it: no sign of
// a writer.) A version this host itself took the lease at, one past the
// pin, moves the pin on: an acquire that went through after its requester
// gave up (a lock failure meanwhile) was this host's, not another's.
LeaseVersions MachineTracker::pins_of(const MachineDisk &d) const {
    if (d.mode != LeaseMode::Exclusive)
        return {};
    LeaseVersions pins = d.versions;
    for (auto &[name, version] : pins)
        if (LeaseVersion taken = leases_.last_taken(name);
            version.lver && taken.lver == version.lver + 1 && taken.file == version.file)
            version = taken;
    return pins;
}

Step MachineTracker::request_acquire(Machine &m, MachineDisk &d) {
    if (d.versions.empty())
        if (auto sv = saved_versions_.find(m.info.name); sv != saved_versions_.end()) {
            auto v = sv->second.by_resource.find(d.resource);
            bool same = !sv->second.leader || !m.info.leader || sv->second.leader == m.info.leader;
            if (v != sv->second.by_resource.end() && same)
                d.versions = v->second;  // held before the restart: taken back at that version
        }
    d.state = MachineDisk::State::Acquiring;
    d.error.clear();
    d.awaits_lockspace = false;
    RequestId id = next_id();
    requests_[id] = {m.info.name, d.disk, 0, m.info.leader};
    Step step = leases_.acquire(id, m.info.name, d.disk, d.resource, d.mode, m.info.leader, d.may_adopt, d.aliases,
                                pins_of(d));
    step.machine_changes.push_back({MachineChange::Kind::Updated, m.info.name});
    return step;
}

Step MachineTracker::files_discovered(const std::string &name, const std::vector<OpenFile> &files,
                                      const ResolvedPatterns &resolved) {
    Step step;
    auto it = machines_.find(name);
    if (it != machines_.end() && it->second.awaiting_scan) {
        it->second.awaiting_scan = false;  // after this scan's disks are in (finish())
        step.machine_changes.push_back({MachineChange::Kind::Updated, name});
    }
    if (it == machines_.end() || !config_->auto_disk_leases || !config_->discovery.open_files)
        return finish(std::move(step));
    Machine &m = it->second;
    auto unidentified_at = [&](const std::string &path) {
        return std::find_if(m.disks.begin(), m.disks.end(), [&](const MachineDisk &d) {
            return d.source == MachineDisk::Source::Discovered && d.state == MachineDisk::State::Unidentified &&
                   d.disk == path;
        });
    };
    std::set<std::string> still_unidentified;
    for (const auto &f : files) {
        // Read-only use needs no lease; only what the machine can write is protected.
        if (!f.writable)
            continue;
        DiskName disk = f.name ? *f.name : namer_.canonical(f.path);
        if (disk.kind == DiskName::Kind::Invalid)
            disk.kind = DiskName::Kind::Unidentified;  // it is open, and cannot be named: fail closed
        if (disk.kind != DiskName::Kind::Canonical && disk.kind != DiskName::Kind::Unidentified)
            continue;
        // Names this host gives it: its identity, the path the VM opened, a
        // block device's node and links (so "/dev/disk/by-path/*" catches a
        // VM that opened /dev/sdc). The paths qemu was given (aliases) may
        // include it, but never exclude it: they come from the VM.
        std::vector<std::string> names = f.names;
        names.push_back(f.path);
        if (disk.kind == DiskName::Kind::Canonical)
            names.push_back(disk.value);
        auto matches = [&](const std::vector<std::string> &list, const std::vector<std::string> &a,
                           const std::vector<std::string> &b) {
            return std::any_of(list.begin(), list.end(),
                               [&](const std::string &n) { return any_matches(a, n) || any_matches(b, n); });
        };
        bool included = matches(names, config_->discovery.include, resolved.include) ||
                        matches(disk.aliases, config_->discovery.include, resolved.include);
        if (!included || matches(names, config_->discovery.exclude, resolved.exclude))
            continue;
        if (disk.kind == DiskName::Kind::Unidentified) {
            still_unidentified.insert(f.path);
            // Covered by a lease the machine holds on it by another name: a
            // rule with identity: path, or a name kept from before an upgrade.
            bool covered = std::any_of(m.disks.begin(), m.disks.end(), [&](const MachineDisk &d) {
                return d.state != MachineDisk::State::Unidentified && d.state != MachineDisk::State::Waiting &&
                       std::find(names.begin(), names.end(), d.disk) != names.end();
            });
            if (covered) {
                if (auto d = unidentified_at(f.path); d != m.disks.end())
                    m.disks.erase(d);
                continue;
            }
        } else if (auto d = unidentified_at(f.path); d != m.disks.end()) {
            m.disks.erase(d);  // named now (the udev database caught up): its lease is asked for instead
            step.machine_changes.push_back({MachineChange::Kind::Updated, name});
        }
        step.append(want_named(m, disk, f.path, LeaseMode::Exclusive, MachineDisk::Source::Discovered));
    }
    // A disk found without an identity stays unprotected until three scans
    // in a row no longer find it open: a scan that misses it once (a file
    // opened now and then, a process list cut short) must not end the grace.
    for (auto d = m.disks.begin(); d != m.disks.end();) {
        bool unidentified = d->source == MachineDisk::Source::Discovered && d->state == MachineDisk::State::Unidentified;
        if (unidentified && still_unidentified.count(d->disk))
            d->missed_scans = 0;
        if (unidentified && !still_unidentified.count(d->disk) && ++d->missed_scans >= kUnidentifiedMissedScans) {
            d = m.disks.erase(d);
            step.machine_changes.push_back({MachineChange::Kind::Updated, name});
        } else {
            ++d;
        }
    }
    return finish(std::move(step));
}

Step MachineTracker::machine_gone(std::string name) {
    Step step;
    auto gone = machines_.find(name);
    if (gone == machines_.end())
        return step;
    saved_pins_.erase(name);
    saved_paused_.erase(name);
    saved_versions_.erase(name);
    if (gone->second.resume_request)
        step.replies.push_back({*gone->second.resume_request,
                                ApiError{ErrorKind::NoSuchOwner, "machine " + name + " went away before it was resumed"},
                                ""});
    machines_.erase(gone);
    if (auto r = reservations_.find(name); r != reservations_.end()) {
        // Its acquires are still out; whatever they bring back is given back.
        step.replies.push_back({r->second.reply_to,
                                ApiError{ErrorKind::Failed, "machine " + name + " went away while being reserved"},
                                "", {}, name});
        reservations_.erase(r);
    }
    leases_.unclaim(name);
    RequestId id = next_id();
    requests_[id] = {name, ""};
    step.append(leases_.release_owner(id, name));
    step.machine_changes.push_back({MachineChange::Kind::Removed, name});
    return step;
}

Step MachineTracker::lease_reply(const Reply &reply) {
    Step step;
    auto req = requests_.find(reply.request);
    if (req == requests_.end())
        return finish(std::move(step));
    OwnRequest pending = req->second;
    requests_.erase(req);
    if (pending.rollback_of) {
        auto rb = rollbacks_.find(pending.rollback_of);
        if (rb != rollbacks_.end() && --rb->second.remaining == 0) {
            step.replies.push_back(rb->second.reply);
            rollbacks_.erase(rb);
        }
        return finish(std::move(step));
    }
    if (pending.disk.empty())
        return finish(std::move(step));  // a release for a machine that is gone: nothing more to do

    auto mit = machines_.find(pending.machine);
    if (mit == machines_.end()) {
        // The machine went away while its lease was being taken: give it back.
        if (!reply.error) {
            RequestId id = next_id();
            requests_[id] = {pending.machine, ""};
            step.append(leases_.release(id, pending.machine, reply.resource));
        }
        return finish(std::move(step));
    }
    Machine &m = mit->second;
    if (pending.leader && m.info.leader && pending.leader != m.info.leader)
        return finish(std::move(step));  // asked for a predecessor of the same name; its successor asked itself
    auto d = std::find_if(m.disks.begin(), m.disks.end(), [&](const MachineDisk &x) { return x.disk == pending.disk; });
    if (d == m.disks.end())
        return finish(std::move(step));
    // Granted as another lease that holds this name as an alias (a name
    // from before an upgrade): that lease is the one it holds.
    if (!reply.error && !reply.resource.empty() && reply.resource != d->resource) {
        d->resource = reply.resource;
        d->aliases.clear();
    }
    step.machine_changes.push_back({MachineChange::Kind::Updated, m.info.name});
    auto reservation = reservations_.find(m.info.name);
    if (reservation != reservations_.end() && d->source == MachineDisk::Source::Reservation) {
        // Part of a RegisterMachine: the caller gets the error; nothing is
        // terminated, since the VM has not started.
        Reservation &r = reservation->second;
        if (d->state == MachineDisk::State::Released)
            ;  // an administrator released it meanwhile: only counted
        else if (!reply.error) {
            d->state = MachineDisk::State::Held;
            if (const Lease *lease = leases_.find(d->resource); lease && !lease->versions.empty())
                d->versions = lease->versions;
        } else if (m.reserved)
            d->state = MachineDisk::State::Failed;
        else
            after_failure(step, m, *d, *reply.error, reply.holders);  // it runs: keep asking, never roll back
        if (reply.error && !r.first_error) {
            r.first_error = reply.error;
            r.holders = reply.holders;
        }
        if (--r.outstanding == 0)
            step.append(finish_reservation(m.info.name));
        return finish(std::move(step));
    }
    if (d->state == MachineDisk::State::Released)
        return finish(std::move(step));  // released by an administrator meanwhile: stays so
    if (!reply.error) {
        d->state = MachineDisk::State::Held;
        if (const Lease *lease = leases_.find(d->resource); lease && !lease->versions.empty())
            d->versions = lease->versions;
        return finish(std::move(step));
    }
    after_failure(step, m, *d, *reply.error, reply.holders);
    return finish(std::move(step));
}

// A machine's acquire failed: retry with back-off, and on a conflict apply
// on_conflict. While it waits, nobody else on this host is granted the disk.
void MachineTracker::after_failure(Step &step, Machine &m, MachineDisk &d, const ApiError &error,
                                   const std::vector<uint64_t> &holders) {
    d.error = error.message;
    bool here = std::find(holders.begin(), holders.end(), uint64_t(leases_.host_id())) != holders.end();
    if (!(error.kind == ErrorKind::LeaseHeld && here))
        leases_.claim(d.resource, m.info.name, d.mode);
    if (error.kind == ErrorKind::LeaseStale) {
        // Someone took it since the machine last held it: whatever the
        // machine still has of that disk in memory is older than what is on
        // it now. Never asked for again; a paused machine stays paused.
        d.state = MachineDisk::State::Stale;
        d.retry_token = 0;
        d.awaits_lockspace = false;
        m.stale = true;
        // Paused it stays, whatever happened to it meanwhile (a stray
        // SIGCONT, a freeze that did not hold): both are idempotent.
        if (m.frozen)
            step.machine_effects.push_back(MachineEffect::freeze(m.info.name, m.info.unit));
        if (m.stopped)
            step.machine_effects.push_back(MachineEffect::kill(m.info.name, SIGSTOP));
        uint32_t holder = holders.empty() ? 0 : static_cast<uint32_t>(holders.front());
        step.stale.push_back({m.info.name, d.disk, holder});
        if (!m.frozen && !m.stopped) {
            // It ran while another host had its disk, and runs on: a
            // conflict, whether or not that host still holds the lease.
            step.conflicts.push_back({m.info.name, d.disk, holder});
            if (m.on_conflict == ConflictAction::Terminate && !m.terminating) {
                m.terminating = true;
                step.machine_effects.push_back(MachineEffect::terminate(m.info.name));  // finish(): SIGKILL
            } else if (m.on_conflict == ConflictAction::Pause && !m.terminating) {
                m.frozen = true;
                step.machine_effects.push_back(MachineEffect::freeze(m.info.name, m.info.unit));
            }
        }
        if (m.resume_request) {
            step.replies.push_back({*m.resume_request,
                                    ApiError{ErrorKind::LeaseStale,
                                             "machine " + m.info.name + " is stale: " + error.message +
                                                 "; resuming it would overwrite that host's writes with what it "
                                                 "still holds in memory. Kill it: machinectl kill --signal=SIGKILL " + m.info.name},
                                    d.resource});
            m.resume_request.reset();
        }
        return;
    }
    if (error.kind == ErrorKind::LockspaceUnavailable && leases_.lockspace_state() != LockspaceState::Joined) {
        // retry_failed takes it once the lockspace is joined. Its grace runs
        // on unless on_lockfailure was applied to it (lock_failed).
        d.state = MachineDisk::State::Failed;
        return;
    }
    if (error.kind != ErrorKind::LeaseHeld) {
        d.state = MachineDisk::State::Failed;
    } else {
        d.state = MachineDisk::State::Conflict;
        if (d.reported != d.error) {
            uint32_t holder = holders.empty() ? 0 : static_cast<uint32_t>(holders.front());
            step.conflicts.push_back({m.info.name, d.disk, holder});
        }
        if (m.on_conflict == ConflictAction::Terminate && !m.terminating) {
            // Fail closed: a VM whose disk someone else holds must not keep writing it.
            m.terminating = true;
            step.machine_effects.push_back(MachineEffect::terminate(m.info.name));
        } else if (m.on_conflict == ConflictAction::Pause && !m.frozen && !m.terminating) {
            // Frozen until the holder lets go (a VM started a moment too early).
            m.frozen = true;
            step.machine_effects.push_back(MachineEffect::freeze(m.info.name, m.info.unit));
        }
    }
    if (m.resume_request) {
        // ResumeMachine is answered now; the disk is retried as usual.
        step.replies.push_back({*m.resume_request,
                                ApiError{error.kind, "machine " + m.info.name + " is not resumed: " + error.message},
                                d.resource, holders});
        m.resume_request.reset();
    }
    if (m.terminating)
        return;
    d.attempts++;
    d.retry_token = next_token_++;
    step.retry_timers.push_back({m.info.name, d.disk, d.retry_token, retry_delay_ms(d.attempts)});
}

Step MachineTracker::retry(const std::string &machine, const std::string &disk, uint64_t token) {
    Step step;
    auto mit = machines_.find(machine);
    if (mit == machines_.end() || mit->second.terminating)
        return step;
    Machine &m = mit->second;
    for (auto &d : m.disks) {
        if (d.disk != disk || d.retry_token != token || d.state != MachineDisk::State::Unidentified)
            continue;
        DiskName name = namer_.canonical(d.disk);
        if (name.kind == DiskName::Kind::Canonical) {
            // Named now: the lease is asked for in its place.
            d.disk = name.value;
            d.resource = lease_resource_name(name.value);
            d.aliases = name.aliases;
            d.error.clear();
            d.retry_token = 0;
            step.append(request_acquire(m, d));
            return finish(std::move(step));
        }
        // Still no name: the next look is further off, nothing is announced again
        // unless the reason changed.
        if (name.kind != DiskName::Kind::Absent)
            d.error = name.value;
        d.attempts++;
        d.retry_token = next_token_++;
        step.retry_timers.push_back({m.info.name, d.disk, d.retry_token, retry_delay_ms(d.attempts)});
        return finish(std::move(step));
    }
    for (auto &d : m.disks)
        if (d.disk == disk && d.retry_token == token && !d.awaits_lockspace &&
            (d.state == MachineDisk::State::Failed || d.state == MachineDisk::State::Conflict))
            step.append(request_acquire(m, d));
    return finish(std::move(step));
}

Step MachineTracker::grace_over(const std::string &machine, uint64_t epoch) {
    Step step;
    auto mit = machines_.find(machine);
    if (mit == machines_.end())
        return step;
    Machine &m = mit->second;
    if (!m.exposed || m.exposed_epoch != epoch || m.unprotected_acted)
        return step;
    m.unprotected_acted = true;
    const MachineDisk *first = nullptr;
    for (const auto &d : m.disks)
        if (d.state != MachineDisk::State::Held && !first)
            first = &d;
    UnprotectedChange change{m.info.name, first ? first->disk : "", unprotected_reason(m), to_string(m.on_unprotected)};
    switch (m.on_unprotected) {
    case UnprotectedAction::Terminate:
        m.terminating = true;
        // A frozen machine is killed, not stopped: systemd thaws a unit
        // before stopping it, and its graceful stop would write the disk
        // another host holds. SIGKILL reaches frozen tasks.
        step.machine_effects.push_back(MachineEffect::terminate(m.info.name));  // finish(): SIGKILL if frozen
        break;
    case UnprotectedAction::Pause:
        if (!m.frozen) {
            m.frozen = true;
            step.machine_effects.push_back(MachineEffect::freeze(m.info.name, m.info.unit));
        }
        break;
    case UnprotectedAction::Warn: break;
    }
    step.unprotected.push_back(std::move(change));
    step.machine_changes.push_back({MachineChange::Kind::Updated, m.info.name});
    return finish(std::move(step));
}

Step MachineTracker::finish(Step step) {
    // One rule for every stop: a machine vmlease froze or stopped is killed,
    // not stopped gracefully. systemd thaws a unit (and machined's stop sends
    // SIGCONT) before the stop, and the machine would write a disk it has no
    // lease for while it shuts down. SIGKILL reaches frozen and stopped tasks.
    for (auto &e : step.machine_effects)
        if (e.kind == MachineEffect::Kind::Terminate)
            if (auto it = machines_.find(e.machine);
                it != machines_.end() && (it->second.frozen || it->second.stopped || it->second.stale))
                e = MachineEffect::kill(e.machine, SIGKILL);
    std::set<std::string> seen;
    std::vector<std::string> names;
    for (const auto &c : step.machine_changes)
        if (c.kind != MachineChange::Kind::Removed && seen.insert(c.machine).second)
            names.push_back(c.machine);
    for (const auto &name : names)
        if (auto it = machines_.find(name); it != machines_.end())
            track_protection(step, it->second);
    return step;
}

void MachineTracker::track_protection(Step &step, Machine &m) {
    if (m.reserved)
        return;
    uint64_t t = std::max<uint64_t>(now(), 1);
    for (auto &d : m.disks) {
        if (d.state == MachineDisk::State::Held) {
            d.unprotected_since = 0;
            d.attempts = 0;
            d.reported.clear();
            continue;
        }
        if (!d.unprotected_since && d.state != MachineDisk::State::Released)
            d.unprotected_since = t;
        bool announce = d.state == MachineDisk::State::Failed || d.state == MachineDisk::State::Conflict ||
                        d.state == MachineDisk::State::Released || d.state == MachineDisk::State::Unidentified;
        std::string why = d.error.empty() ? to_string(d.state) : std::string(to_string(d.state)) + ": " + d.error;
        if (d.state == MachineDisk::State::Released)
            why = "released: an administrator released its lease while it runs";
        if (announce && d.reported != (d.error.empty() ? why : d.error)) {
            d.reported = d.error.empty() ? why : d.error;
            step.unprotected.push_back({m.info.name, d.disk, why, ""});
        }
    }
    bool exposed = is_exposed(m);
    if (exposed && !m.exposed) {
        m.exposed = true;
        m.exposed_epoch = next_token_++;
        m.unprotected_acted = false;
        step.protection_timers.push_back({m.info.name, m.exposed_epoch, m.unprotected_grace});
    } else if (!exposed && m.exposed) {
        m.exposed = false;
        m.exposed_epoch = 0;
    }
    if (m.frozen && !m.terminating && !is_pending(m) && !m.stopped && !m.stale && !m.awaiting_scan) {
        // Frozen by vmlease for want of a lease, which it now has.
        m.frozen = false;
        step.machine_effects.push_back(MachineEffect::thaw(m.info.name, m.info.unit));
        step.resumed.push_back({m.info.name, "thawed: its leases are held"});
    }
    if (m.stopped && m.resume_after_lockfailure && !m.resume_request)
        resume_if_protected(step, m);
    if (m.resume_request)
        resume_if_protected(step, m);
}

// Every disk held again, each exclusive lease at the version the machine
// had (the acquire was pinned to it): nothing another host wrote meanwhile
// can be overwritten by what the machine holds in memory. Let it go on.
void MachineTracker::resume_if_protected(Step &step, Machine &m) {
    if (m.stale || m.terminating || m.awaiting_scan || leases_.lockspace_state() != LockspaceState::Joined)
        return;
    if (m.resume_request) {
        // What ResumeMachine cannot wait for: answered now, nothing resumed.
        for (const auto &d : m.disks)
            if (d.state == MachineDisk::State::Released || d.state == MachineDisk::State::Waiting ||
                d.state == MachineDisk::State::Unidentified || d.state == MachineDisk::State::Conflict) {
                step.replies.push_back({*m.resume_request,
                                        ApiError{ErrorKind::Failed, "machine " + m.info.name + " is not resumed: disk " +
                                                                        d.disk + " is " + to_string(d.state)},
                                        ""});
                m.resume_request.reset();
                return;
            }
    } else if (m.disks.empty()) {
        return;  // vmlease resumes by itself only a machine whose disks it knows held
    }
    if (!machine_protected(m))
        return;
    if (m.frozen)
        step.machine_effects.push_back(MachineEffect::thaw(m.info.name, m.info.unit));
    // SIGCONT for a SIGSTOP (on_lockfailure pause, from the agent or its
    // helper), and for a machine paused outside vmlease (ResumeMachine).
    step.machine_effects.push_back(MachineEffect::kill(m.info.name, SIGCONT));
    std::string reason = m.resume_request ? "ResumeMachine: its leases are held at the versions it had"
                                          : "the lockspace is back and its leases are held at the versions it had";
    m.frozen = false;
    m.stopped = false;
    if (m.resume_request) {
        step.replies.push_back({*m.resume_request, std::nullopt, "", {}, m.info.name});
        m.resume_request.reset();
    }
    step.resumed.push_back({m.info.name, reason});
    step.machine_changes.push_back({MachineChange::Kind::Updated, m.info.name});
}

void MachineTracker::load_saved(const SavedState &saved) {
    for (const auto &l : saved.leases)
        for (const auto &owner : l.owners)
            if (const SavedOwner *o = saved.owner(owner); o && o->kind == SavedOwner::Kind::Machine &&
                                                          !l.versions.empty() && l.mode == LeaseMode::Exclusive) {
                auto &sv = saved_versions_[owner];
                sv.leader = o->leader;
                sv.by_resource[l.resource] = l.versions;
            }
    for (const auto &p : saved.pins)
        saved_pins_[p.owner].push_back(p);
    for (const auto &p : saved.paused)
        saved_paused_[p.owner] = p;
}

std::vector<std::string> MachineTracker::not_listed(const std::vector<std::string> &listed) const {
    std::vector<std::string> gone;
    for (const auto &[name, m] : machines_)
        if (!m.reserved && std::find(listed.begin(), listed.end(), name) == listed.end())
            gone.push_back(name);
    return gone;
}

void MachineTracker::forget_saved(const std::vector<std::string> &listed) {
    auto gone = [&](const std::string &owner) {
        return std::find(listed.begin(), listed.end(), owner) == listed.end();
    };
    std::erase_if(saved_pins_, [&](const auto &e) { return gone(e.first); });
    std::erase_if(saved_paused_, [&](const auto &e) { return gone(e.first); });
    std::erase_if(saved_versions_, [&](const auto &e) { return gone(e.first); });
}

void MachineTracker::apply_saved(Step &step, Machine &m) {
    auto same = [&](uint32_t leader) { return leader == 0 || m.info.leader == 0 || leader == m.info.leader; };
    if (auto v = saved_versions_.find(m.info.name); v != saved_versions_.end() && !same(v->second.leader))
        saved_versions_.erase(v);  // another machine under that name: it starts afresh
    if (auto p = saved_paused_.find(m.info.name); p != saved_paused_.end()) {
        if (same(p->second.leader)) {
            m.stopped = p->second.stopped;
            m.frozen = p->second.frozen;
            m.stale = p->second.stale;
            // Resumed only once a scan has shown every disk it writes (one
            // it held no lease for is in no pin).
            m.awaiting_scan = (m.stopped || m.frozen) && config_->auto_disk_leases &&
                              config_->discovery.open_files && m.info.leader != 0;
        }
        saved_paused_.erase(p);
    }
    auto pins = saved_pins_.find(m.info.name);
    if (pins == saved_pins_.end())
        return;
    for (const auto &pin : pins->second) {
        if (!same(pin.leader) || m.disks.size() >= kMaxDisksPerMachine)
            continue;
        MachineDisk d = restored_disk(pin.disk, pin.resource, pin.aliases, pin.mode, pin.versions);
        if (pin.stale) {
            d.state = MachineDisk::State::Stale;
            d.error = "its lease was taken by another host since the machine last held it";
            d.reported = d.error;
            leases_.claim(d.resource, m.info.name, d.mode);
            m.disks.push_back(d);
            continue;
        }
        if (leases_.lockspace_state() != LockspaceState::Joined) {
            // Taken back (at its versions) once the lockspace is joined;
            // on_lockfailure, not on_unprotected, governs it meanwhile.
            d.state = MachineDisk::State::Failed;
            d.error = "the lockspace failed";
            d.awaits_lockspace = true;
            leases_.claim(d.resource, m.info.name, d.mode);
            m.disks.push_back(d);
            continue;
        }
        m.disks.push_back(d);
        step.append(request_acquire(m, m.disks.back()));
    }
    saved_pins_.erase(pins);
}

Step MachineTracker::resume(RequestId id, const std::string &owner) {
    Step step;
    auto fail = [&](ErrorKind kind, const std::string &message) {
        step.replies.push_back({id, ApiError{kind, message}, ""});
        return std::move(step);
    };
    auto it = machines_.find(owner);
    if (it == machines_.end() || it->second.reserved)
        return fail(ErrorKind::NoSuchOwner, "no running machine " + owner);
    Machine &m = it->second;
    if (m.terminating)
        return fail(ErrorKind::Failed, "machine " + owner + " is being terminated");
    if (m.resume_request)
        return fail(ErrorKind::Failed, "machine " + owner + " is being resumed already");
    if (m.stale)
        return fail(ErrorKind::LeaseStale,
                    "machine " + owner + " is stale: a lease it held was taken by someone else since; resuming it "
                    "would overwrite that host's writes with what it still holds in memory. Kill it: machinectl kill "
                    "--signal=SIGKILL " + owner);
    if (m.awaiting_scan)
        return fail(ErrorKind::Failed, "machine " + owner + " was paused before vmleased restarted and its open "
                                       "files have not been scanned yet; try again in a moment");
    for (const auto &d : m.disks) {
        switch (d.state) {
        case MachineDisk::State::Stale:
            return fail(ErrorKind::LeaseStale,
                        "machine " + owner + " is stale: the lease of disk " + d.disk +
                            " was taken by someone else since it last held it; resuming it would overwrite that "
                            "host's writes with what it still holds in memory. Kill it: machinectl kill --signal=SIGKILL " +
                                owner);
        case MachineDisk::State::Conflict:
            return fail(ErrorKind::LeaseHeld, "disk " + d.disk + " of machine " + owner + " is held elsewhere: " + d.error);
        case MachineDisk::State::Waiting:
        case MachineDisk::State::Unidentified:
        case MachineDisk::State::Released:
            return fail(ErrorKind::Failed, "disk " + d.disk + " of machine " + owner + " is " + to_string(d.state) +
                                               ": no lease protects it, so it is not resumed");
        default: break;
        }
    }
    if (std::any_of(m.disks.begin(), m.disks.end(),
                    [](const MachineDisk &d) { return d.state == MachineDisk::State::Failed; }) &&
        leases_.lockspace_state() != LockspaceState::Joined)
        return fail(ErrorKind::LockspaceUnavailable, std::string("the lockspace is ") +
                                                          to_string(leases_.lockspace_state()) +
                                                          ": the machine's leases cannot be taken back yet");
    m.resume_request = id;
    for (auto &d : m.disks)
        if (d.state == MachineDisk::State::Failed)
            step.append(request_acquire(m, d));
    step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
    return finish(std::move(step));
}

Step MachineTracker::release_leases(RequestId id, const std::string &owner) {
    leases_.unclaim(owner);
    Step step = leases_.release_owner(id, owner);
    auto it = machines_.find(owner);
    if (it != machines_.end() && it->second.reserved && !reservations_.count(owner)) {
        machines_.erase(it);
        step.machine_changes.push_back({MachineChange::Kind::Removed, owner});
    } else if (it != machines_.end()) {
        // Released stays released until the machine ends: no retry takes
        // back what the administrator let go.
        for (auto &d : it->second.disks)
            if (d.state != MachineDisk::State::Waiting)
                mark_released(d);
        step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
    }
    return finish(std::move(step));
}

Step MachineTracker::release_disk(RequestId id, const std::string &owner, const std::string &resource,
                                  const SavedState *not_reconciled) {
    bool known = leases_.find(resource) != nullptr;
    if (!known && not_reconciled)
        for (const auto &l : not_reconciled->leases)
            if (l.resource == resource) {
                std::string owners = join_owners(l.owners);
                Step step;
                step.replies.push_back({id,
                                        ApiError{ErrorKind::LeaseHeld,
                                                 "disk " + l.disk + " is held on this host for " +
                                                     (owners.empty() ? std::string("nobody known") : owners) +
                                                     " from before vmleased restarted; it is given back to them once "
                                                     "systemd-machined has been asked"},
                                        resource,
                                        {leases_.host_id()}});
                return step;
            }
    Step step = leases_.release(id, owner, resource);
    auto it = machines_.find(owner);
    if (it == machines_.end() || !known)
        return step;
    leases_.unclaim(owner, resource);
    for (auto &d : it->second.disks)
        if (d.resource == resource && d.state != MachineDisk::State::Waiting) {
            mark_released(d);
            step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
        }
    return finish(std::move(step));
}

Step MachineTracker::retry_failed() {
    Step step;
    for (auto &[name, m] : machines_)
        for (auto &d : m.disks)
            if (d.state == MachineDisk::State::Failed)
                step.append(request_acquire(m, d));
    for (auto &unit : restart_units_)
        step.machine_effects.push_back(MachineEffect::start_unit(unit));
    restart_units_.clear();
    return finish(std::move(step));
}

void MachineTracker::apply_lock_failure_action(Step &step, const std::string &owner, const Machine &m) {
    LockFailureChange change{owner, to_string(m.on_lockfailure), ""};
    const LockFailureEffect &effect = effect_for(m.on_lockfailure);
    if (effect.terminate)
        step.machine_effects.push_back(MachineEffect::terminate(owner));
    else if (effect.signal != 0)
        step.machine_effects.push_back(MachineEffect::kill(owner, effect.signal));
    if (effect.signal == SIGSTOP)
        if (auto it = machines_.find(owner); it != machines_.end())
            it->second.stopped = true;
    if (effect.restarts_unit) {
        const std::string &unit = m.info.unit;
        bool service = unit.size() > 8 && unit.compare(unit.size() - 8, 8, ".service") == 0;
        if (service)
            restart_units_.push_back(unit);
        else
            change.note = "unit " + (unit.empty() ? std::string("(none)") : unit) +
                          " is not a service, so restart acts as terminate";
    }
    step.lock_failures.push_back(change);
}

Step MachineTracker::lock_failed() {
    Step step;
    for (const auto &owner : leases_.owners()) {
        auto it = machines_.find(owner);
        if (it == machines_.end() || it->second.reserved) {
            step.lock_failures.push_back({owner, "release", ""});
        } else {
            apply_lock_failure_action(step, owner, it->second);
        }
        // A machine being stopped keeps its leases until it is gone
        // (machine_gone releases them): a VM that does not die, e.g. stuck
        // in D state on its own storage, must not be declared clear, or
        // sanlock stops escalating and disarms its watchdog while the VM's
        // pending writes can still land after another host took the disk.
        if (it != machines_.end() && !it->second.reserved && effect_for(it->second.on_lockfailure).stops_machine) {
            for (auto &d : it->second.disks)
                if (d.state == MachineDisk::State::Held)
                    d.error = "the lockspace failed; the lease stays held until the machine is gone";
            step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
            continue;
        }
        RequestId id = next_id();
        requests_[id] = {owner, ""};
        step.append(leases_.release_owner(id, owner));
        if (it != machines_.end()) {
            // Taken again after the rejoin if the machine is still there.
            for (auto &d : it->second.disks)
                if (d.state == MachineDisk::State::Held || d.state == MachineDisk::State::Acquiring) {
                    d.state = MachineDisk::State::Failed;
                    d.error = "the lockspace failed";
                    d.awaits_lockspace = true;
                    leases_.claim(d.resource, owner, d.mode);
                }
            step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
        }
    }
    return finish(std::move(step));
}

Step MachineTracker::restore(const SavedState &saved, uint64_t now, SavedState *deferred) {
    Step step;
    std::set<std::string> kept;
    std::map<std::string, std::vector<DiskRule>> reservations;
    for (const auto &lease : saved.leases) {
        SavedLease later{lease.resource, lease.disk, lease.mode, {}, lease.aliases, lease.versions};
        for (const auto &owner : lease.owners) {
            const SavedOwner *who = saved.owner(owner);
            auto kind = who ? who->kind : SavedOwner::Kind::Machine;
            auto mit = machines_.find(owner);
            if (deferred && kind == SavedOwner::Kind::Machine) {
                // Whether it still runs is unknown: sanlock keeps holding it.
                kept.insert(lease.resource);
                later.owners.push_back(owner);
                if (!deferred->owner(owner))
                    deferred->owners.push_back({owner, SavedOwner::Kind::Machine, 0});
            } else if (mit != machines_.end() && !mit->second.reserved) {
                // Still running (or a new machine of that name: it gets the
                // disk either way; its processes are the ones using it now).
                kept.insert(lease.resource);
                // The saved name is canonical already; it is not looked up
                // again (its file system may hang, and the lease is held).
                if (!mit->second.terminating)
                    step.append(want_named(mit->second,
                                           DiskName{DiskName::Kind::Canonical, lease.disk, lease.aliases},
                                           lease.disk, lease.mode, MachineDisk::Source::Restored));
                for (auto &d : mit->second.disks)
                    if (d.resource == lease.resource && d.versions.empty())
                        d.versions = lease.versions;
            } else if (mit != machines_.end()) {
                continue;  // reserved again since the restart: that reservation decides
            } else if (kind == SavedOwner::Kind::Reserved && who->reserved_until > now) {
                kept.insert(lease.resource);
                reservations[owner].push_back({lease.disk, lease.mode, false, lease.aliases});
            } else if (kind == SavedOwner::Kind::Api) {
                kept.insert(lease.resource);
                RequestId id = next_id();
                requests_[id] = {owner, ""};
                step.append(leases_.acquire(id, owner, lease.disk, lease.resource, lease.mode, 0, true, lease.aliases));
            }
        }
        if (!later.owners.empty())
            deferred->leases.push_back(std::move(later));
    }
    for (auto &[owner, disks] : reservations) {
        uint64_t left = saved.owner(owner)->reserved_until - now;
        step.append(reserve(next_id(), owner, disks, static_cast<uint32_t>(std::min<uint64_t>(left, 86400)), true));
    }
    for (const auto &lease : saved.leases)
        if (!kept.count(lease.resource) && !leases_.find(lease.resource))
            step.append(leases_.release_orphan(lease.resource, lease.disk, lease.aliases));
    return finish(std::move(step));
}

Step MachineTracker::restore_after_failure(const SavedState &saved, const std::set<std::string> &acted,
                                           SavedState &still_running) {
    Step step;
    std::set<std::string> told;
    for (const auto &owner : acted)
        if (auto mit = machines_.find(owner); mit != machines_.end() && !mit->second.reserved &&
                                              mit->second.on_lockfailure == LockFailureAction::Pause)
            mit->second.stopped = true;  // the helper paused it
    for (const auto &lease : saved.leases) {
        SavedLease later{lease.resource, lease.disk, lease.mode, {}, lease.aliases, lease.versions};
        for (const auto &owner : lease.owners) {
            auto mit = machines_.find(owner);
            // Nobody acted on it yet (the agent before this one said it would,
            // and did not get to it): its action now.
            if (mit != machines_.end() && !mit->second.reserved && !acted.count(owner) && told.insert(owner).second)
                apply_lock_failure_action(step, owner, mit->second);
            if (mit != machines_.end() && !mit->second.reserved && effect_for(mit->second.on_lockfailure).stops_machine) {
                later.owners.push_back(owner);
                if (!still_running.owner(owner))
                    still_running.owners.push_back({owner, SavedOwner::Kind::Machine, 0});
            }
        }
        if (!later.owners.empty()) {
            still_running.leases.push_back(std::move(later));
            continue;
        }
        if (!leases_.find(lease.resource))
            step.append(leases_.release_orphan(lease.resource, lease.disk, lease.aliases));
        // A machine left running (pause, ignore) takes its disk again once
        // the lockspace is back, as after a failure the agent saw.
        for (const auto &owner : lease.owners) {
            auto mit = machines_.find(owner);
            if (mit == machines_.end() || mit->second.reserved)
                continue;
            Machine &m = mit->second;
            auto known = std::find_if(m.disks.begin(), m.disks.end(),
                                      [&](const MachineDisk &d) { return d.disk == lease.disk; });
            if (known != m.disks.end()) {
                // Named again since the restart (a rule, discovery), and
                // refused for want of the lockspace: on_lockfailure governs it.
                if (known->versions.empty())
                    known->versions = lease.versions;
                if (known->state == MachineDisk::State::Failed || known->state == MachineDisk::State::Acquiring) {
                    known->awaits_lockspace = true;
                    leases_.claim(known->resource, owner, known->mode);
                    step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
                }
                continue;
            }
            if (m.disks.size() >= kMaxDisksPerMachine)
                continue;
            MachineDisk d = restored_disk(lease.disk, lease.resource, lease.aliases, lease.mode, lease.versions);
            d.state = MachineDisk::State::Failed;
            d.error = "the lockspace failed";
            d.awaits_lockspace = true;
            leases_.claim(d.resource, owner, d.mode);
            m.disks.push_back(d);
            step.machine_changes.push_back({MachineChange::Kind::Updated, owner});
        }
    }
    return finish(std::move(step));
}

std::set<std::string> MachineTracker::resources_in_use() const {
    std::set<std::string> held;
    for (const auto &[resource, lease] : leases_.leases()) {
        held.insert(resource);
        for (const auto &alias : alias_resources(lease))
            held.insert(alias);
    }
    for (const auto &[name, m] : machines_)
        for (const auto &d : m.disks)
            if (!d.resource.empty()) {
                held.insert(d.resource);
                for (const auto &alias : d.aliases)
                    held.insert(lease_resource_name(alias));
            }
    return held;
}

SavedState MachineTracker::snapshot(const std::map<std::string, uint64_t> &reserved_until, uint64_t now) const {
    SavedState state;
    state.leases = leases_.saved_leases();
    std::set<std::string> owners;
    for (const auto &l : state.leases)
        owners.insert(l.owners.begin(), l.owners.end());
    for (const auto &name : owners) {
        SavedOwner o{name, SavedOwner::Kind::Api, 0};
        auto m = machines_.find(name);
        if (m != machines_.end() && !m->second.reserved) {
            o.kind = SavedOwner::Kind::Machine;
            o.leader = m->second.info.leader;
        } else if (m != machines_.end()) {
            o.kind = SavedOwner::Kind::Reserved;
            auto deadline = reserved_until.find(name);
            auto r = reservations_.find(name);
            o.reserved_until = deadline != reserved_until.end() ? deadline->second
                               : now + (r != reservations_.end() ? r->second.grace_seconds : kDefaultGraceSeconds);
        }
        state.owners.push_back(o);
    }
    for (const auto &[name, m] : machines_) {
        if (m.reserved)
            continue;
        for (const auto &d : m.disks)
            if (!d.versions.empty() && d.state != MachineDisk::State::Held && d.state != MachineDisk::State::Released &&
                d.state != MachineDisk::State::Waiting && d.state != MachineDisk::State::Unidentified)
                state.pins.push_back({name, m.info.leader, d.resource, d.disk, d.mode,
                                      d.state == MachineDisk::State::Stale, d.aliases, d.versions});
        if (m.frozen || m.stopped || m.stale)
            state.paused.push_back({name, m.info.leader, m.stopped, m.frozen, m.stale});
    }
    // Of machines not listed again yet since the start.
    for (const auto &[name, pins] : saved_pins_)
        state.pins.insert(state.pins.end(), pins.begin(), pins.end());
    for (const auto &[name, p] : saved_paused_)
        state.paused.push_back(p);
    return state;
}

Step MachineTracker::sanlock_lost() {
    Step step = leases_.all_leases_lost();
    for (auto &[name, m] : machines_) {
        bool changed = false;
        for (auto &d : m.disks)
            if (d.state == MachineDisk::State::Held || d.state == MachineDisk::State::Acquiring) {
                d.state = MachineDisk::State::Failed;
                d.error = "the sanlock daemon stopped";
                // No on_lockfailure applies: its grace runs (on_unprotected).
                leases_.claim(d.resource, name, d.mode);
                changed = true;
            }
        if (changed)
            step.machine_changes.push_back({MachineChange::Kind::Updated, name});
    }
    return finish(std::move(step));
}

}  // namespace vmlease
