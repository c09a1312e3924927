// A Step told on the bus: lease and machine objects made, updated and
// dropped; replies to the calls it answers; signals; PropertiesChanged.
#include "manager_object.hpp"
#include "manager_internal.hpp"

#include "core/authorization_table.hpp"
#include "core/owner_name.hpp"
#include "core/disk_path.hpp"
#include "udev_disk_namer.hpp"
#include "log.hpp"

#include <cerrno>

namespace vmlease {

using namespace manager_internal;

void ManagerObject::sync_machine_objects(const MachineChange &change) {
    auto it = machine_objects_.find(change.machine);
    const Machine *m = state_.tracker().find(change.machine);
    if (change.kind == MachineChange::Kind::Removed || !m) {
        if (it != machine_objects_.end())
            machine_objects_.erase(it);
        return;
    }
    if (it == machine_objects_.end())
        machine_objects_.emplace(change.machine,
                                 std::make_unique<MachineObject>(
                                     connection_, *m,
                                     [this](sdbus::Result<> &&r, const std::string &name, const sdbus::Message &msg) {
                                         release_from_machine_object(std::move(r), name, msg);
                                     }));
    else
        it->second->update(*m);
}

// ---------------------------------------------------------------------------

void ManagerObject::sync_lease_objects(const LeaseChange &change) {
    const Lease &lease = change.lease;
    auto it = lease_objects_.find(lease.resource);
    if (change.kind == LeaseChange::Kind::Released && change.lease_gone) {
        if (it != lease_objects_.end())
            lease_objects_.erase(it);
        return;
    }
    if (it == lease_objects_.end())
        lease_objects_.emplace(lease.resource, std::make_unique<LeaseObject>(
                                                   connection_, lease,
                                                   lease_file_path(state_.sanlock_settings(), lease.resource)));
    else
        it->second->update(lease);
}

void ManagerObject::emit_property_changes(bool lockspace_changed) {
    std::vector<std::string> changed;
    if (lockspace_changed)
        changed.push_back("LockspaceState");
    uint32_t count = LeaseCount();
    if (count != published_lease_count_) {
        published_lease_count_ = count;
        changed.push_back("LeaseCount");
    }
    uint32_t machines = MachineCount();
    if (machines != published_machine_count_) {
        published_machine_count_ = machines;
        changed.push_back("MachineCount");
    }
    auto warnings = Warnings();
    if (warnings != published_warnings_) {
        published_warnings_ = std::move(warnings);
        changed.push_back("Warnings");
    }
    if (!changed.empty())
        emitPropertiesChangedSignal(kManagerInterface, changed);
}

void ManagerObject::publish(const Step &step) {
    list_cache_.reset();  // every change to the registry comes through here
    // Objects first: a reply may name one. Then the replies, so callers do
    // not wait for the signals; then the signals.
    for (const auto &change : step.lease_changes)
        emit_safely("lease object change", [&] { sync_lease_objects(change); });
    for (const auto &change : step.machine_changes)
        emit_safely("machine object change", [&] { sync_machine_objects(change); });
    for (const auto &reply : step.replies) {
        done_inspecting(reply.request);
        auto it = pending_.find(reply.request);
        if (it == pending_.end())
            continue;
        emit_safely("method reply", [&] { std::visit(
            [&](auto &result) {
                using R = std::decay_t<decltype(result)>;
                if (reply.error) {
                    result.returnError(to_dbus(*reply.error));
                } else if constexpr (std::is_same_v<R, sdbus::Result<sdbus::ObjectPath>>) {
                    result.returnResults(sdbus::ObjectPath(reply.machine.empty() ? lease_object_path(reply.resource)
                                                                                 : machine_object_path(reply.machine)));
                } else if constexpr (std::is_same_v<R, sdbus::Result<>>) {
                    result.returnResults();
                } else if constexpr (std::is_same_v<R, InspectResult>) {
                    std::vector<sdbus::Struct<uint64_t, uint64_t, std::string, std::string>> holders;
                    const Inspection &in = reply.inspection.value();
                    for (const auto &h : in.holders)
                        holders.emplace_back(h.host_id, h.generation, h.state, h.this_host ? "this host" : "other host");
                    result.returnResults(reply.resource, in.lease_file, holders, in.version);
                } else if constexpr (std::is_same_v<R, sdbus::Result<std::vector<std::string>>>) {
                    result.returnResults(reply.removed);
                }
            },
            it->second); });
        pending_.erase(it);
    }
    for (const auto &change : step.lease_changes) {
        sdbus::ObjectPath path(lease_object_path(change.lease.resource));
        if (change.kind == LeaseChange::Kind::Acquired)
            emit_safely("LeaseAcquired", [&] { emitLeaseAcquired(change.owner, change.lease.disk, path); });
        else
            emit_safely("LeaseReleased", [&] { emitLeaseReleased(change.owner, change.lease.disk, path); });
    }
    for (const auto &c : step.conflicts)
        emit_safely("LeaseConflict", [&] { emitLeaseConflict(c.machine, c.disk, c.holder_host_id); });
    for (const auto &u : step.unprotected)
        emit_safely("MachineUnprotected", [&] {
            emitMachineUnprotected(u.machine, u.disk, u.action.empty() ? u.reason : u.reason + "; " + u.action);
        });
    for (const auto &st : step.stale)
        emit_safely("MachineStale", [&] { emitMachineStale(st.machine, st.disk, st.holder_host_id); });
    for (const auto &r : step.resumed)
        emit_safely("MachineResumed", [&] { emitMachineResumed(r.machine, r.reason); });
    for (const auto &f : step.lock_failures)
        emit_safely("LockFailure",
                    [&] { emitLockFailure(f.owner, state_.sanlock_settings().lockspace, f.action); });
    emit_safely("PropertiesChanged", [&] { emit_property_changes(step.lockspace_state_changed); });
}

}  // namespace vmlease
