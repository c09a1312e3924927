#include "manager_object.hpp"

#include "core/authorization_table.hpp"
#include "core/owner_name.hpp"
#include "core/disk_path.hpp"
#include "udev_disk_namer.hpp"
#include "log.hpp"

#include <cerrno>

namespace vmlease {
namespace {

sdbus::Error to_dbus(const ApiError &e) { return sdbus::Error(error_name(e.kind), e.message); }

sdbus::Error invalid_args(const std::string &message) { return to_dbus({ErrorKind::InvalidArgs, message}); }

void reject_options(const std::map<std::string, sdbus::Variant> &options, const char *method) {
    if (!options.empty())
        throw invalid_args("unknown option " + quoted(options.begin()->first) + ": " + method + " takes no options");
}

void check_owner(const std::string &owner) {
    std::string problem = check_owner_name(owner);
    if (!problem.empty())
        throw invalid_args("owner: " + problem);
}

// Emitting a signal can fail (a full send queue, a closed connection); that
// must not keep the remaining signals and replies of a Step from going out.
template <typename Emit>
void emit_safely(const char *what, Emit emit) {
    try {
        emit();
    } catch (const std::exception &e) {
        log_warning(std::string("cannot emit ") + what + ": " + e.what());
    }
}

// Run a handler body; anything it throws becomes an error reply. sdbus-c++
// 1.2.0 terminates the process on any exception that is not sdbus::Error.
template <typename Result, typename Body>
void guarded(Result &result, const char *method, Body body) {
    try {
        body();
    } catch (const sdbus::Error &e) {
        result.returnError(e);
    } catch (const std::exception &e) {
        log_error(std::string(method) + " failed: " + e.what());
        result.returnError(sdbus::Error(error_name(ErrorKind::Failed), std::string(method) + " failed: " + e.what()));
    }
}

}  // namespace


// ---------------------------------------------------------------------------

ManagerObject::ManagerObject(sdbus::IConnection &connection, SignalGate &gate, Requests &requests,
                             const StateView &state, DiskResolver &resolver, std::string version)
    : AdaptorInterfaces(connection, kManagerPath), connection_(connection), requests_(requests), state_(state),
      resolver_(resolver), authorizer_(connection, gate),
      version_(std::move(version)) {
    registerAdaptor();
}

ManagerObject::~ManagerObject() {
    machine_objects_.clear();
    lease_objects_.clear();
    unregisterAdaptor();
}

// Once a call's Result is remembered, a failure must be answered through
// pending_, since the handler's own Result has been moved from.
void ManagerObject::dispatch(RequestId id, const std::function<void()> &fn) {
    try {
        fn();
    } catch (const sdbus::Error &e) {
        answer_error(id, ApiError{ErrorKind::Failed, e.getMessage()});
    } catch (const std::exception &e) {
        log_error(std::string("request failed: ") + e.what());
        answer_error(id, ApiError{ErrorKind::Failed, e.what()});
    }
}

void ManagerObject::answer_error(RequestId id, const ApiError &error) {
    done_inspecting(id);
    auto it = pending_.find(id);
    if (it == pending_.end())
        return;
    emit_safely("error reply", [&] { std::visit([&](auto &r) { r.returnError(to_dbus(error)); }, it->second); });
    pending_.erase(it);
}

void ManagerObject::authorize(RequestId id, const char *method, std::map<std::string, std::string> details,
                              std::function<void()> go, const char *interface, const sdbus::Message *message) {
    // The caller's Result is in pending_ now: every failure is answered from there.
    try {
        AuthorizationDecision decision = authorization_for(interface, method);
        if (decision.kind == Authorization::Open)
            return dispatch(id, go);
        if (decision.kind == Authorization::Denied)
            return answer_error(id, {ErrorKind::AccessDenied, std::string(method) + " is not allowed for anyone"});
        if (!message)
            message = getObject().getCurrentlyProcessedMessage();
        if (!message)
            return answer_error(id, {ErrorKind::Failed, "cannot identify the caller"});
        AuthorizationRequest request{message->getSender(), allows_interactive_authorization(*message),
                                     decision.action, std::move(details)};
        authorizer_.check(std::move(request), [this, id, go = std::move(go)](std::optional<ApiError> error) {
            if (error)
                answer_error(id, *error);
            else
                dispatch(id, go);
        });
    } catch (const std::exception &e) {
        log_error(std::string("authorizing ") + method + " failed: " + e.what());
        answer_error(id, {ErrorKind::Failed, std::string("cannot authorize ") + method + ": " + e.what()});
    }
}

namespace {

// A disk path as a caller wrote it, made absolute-and-normalised without
// touching the file system: what polkit is shown, before anything is looked
// up. Throws InvalidArgs when it is no usable path.
std::string lexical_disk(const std::string &disk) {
    auto normalised = normalise_disk_path(disk);
    if (auto *err = std::get_if<PathError>(&normalised))
        throw invalid_args("disk: " + err->message);
    return std::get<std::string>(normalised);
}

// The identity of a disk a caller named, or an error saying why there is
// none. A device path with no device behind it is refused for taking a
// lease (its identity is what the device says it is); releasing and
// inspecting accept it as written, so that a lease whose LUN went away can
// still be looked at and given back. A device with no stable identity is
// refused (fail closed: hosts could name it differently).
std::variant<DiskName, ApiError> caller_disk(const DiskName &name, const std::string &path, bool taking) {
    switch (name.kind) {
    case DiskName::Kind::Canonical: return name;
    case DiskName::Kind::Invalid: return ApiError{ErrorKind::InvalidArgs, "disk: " + name.value};
    case DiskName::Kind::Unidentified:
        // Releasing and inspecting go by the path as written (a lease taken
        // under it before the identity rule, by an administrator's rule).
        if (!taking)
            if (auto lexical = normalise_disk_path(path); std::holds_alternative<std::string>(lexical))
                return DiskName{DiskName::Kind::Canonical, std::get<std::string>(lexical)};
        return ApiError{ErrorKind::InvalidDisk, name.value};
    case DiskName::Kind::Absent:
        if (taking)
            return ApiError{ErrorKind::InvalidDisk, "disk " + quoted(path) +
                                                        " cannot be resolved: no such device on this host (a block "
                                                        "device's lease is named after the identity the device "
                                                        "reports)"};
        return DiskName{DiskName::Kind::Canonical, name.value};
    }
    return name;
}

}  // namespace

std::string ManagerObject::caller() const {
    const sdbus::Message *message = getObject().getCurrentlyProcessedMessage();
    return message ? message->getSender() : std::string();
}

void ManagerObject::resolve_disks(RequestId id, const std::string &caller, bool authorized,
                                  std::vector<std::string> paths, bool taking,
                                  std::function<void(const std::vector<DiskName> &disks)> go) {
    std::vector<std::string> asked = paths;
    resolver_.resolve(
        caller, authorized, std::move(paths),
        [this, id, taking, asked = std::move(asked), go = std::move(go)](DiskResolver::Outcome outcome) {
            if (outcome.error)
                return answer_error(id, *outcome.error);
            std::vector<DiskName> disks;
            for (size_t i = 0; i < outcome.names.size(); i++) {
                auto disk = caller_disk(outcome.names[i], asked[i], taking);
                if (auto *error = std::get_if<ApiError>(&disk))
                    return answer_error(id, *error);
                disks.push_back(std::get<DiskName>(disk));
            }
            dispatch(id, [&] { go(disks); });
        });
}

void ManagerObject::device_changed(const DeviceEvent &event) {
    emit_safely("a device signal", [&] {
        if (event.kind == DeviceEvent::Kind::Added)
            emitDeviceAdded(event.name);
        else
            emitDeviceRemoved(event.name);
    });
}

RequestId ManagerObject::remember(PendingResult result) {
    RequestId id = next_request_++;
    pending_.emplace(id, std::move(result));
    return id;
}

void ManagerObject::AcquireDisk(sdbus::Result<sdbus::ObjectPath> &&result, std::string owner, std::string disk,
                                std::string mode, std::map<std::string, sdbus::Variant> options) {
    guarded(result, "AcquireDisk", [&] {
        check_owner(owner);
        std::string path = lexical_disk(disk);
        auto parsed = lease_mode_from_string(mode);
        if (!parsed || *parsed == LeaseMode::None)
            throw invalid_args("mode must be \"exclusive\" or \"shared\", not " + quoted(mode));
        reject_options(options, "AcquireDisk");
        RequestId id = remember(std::move(result));
        // Authorized first: nothing a caller names is looked at before.
        authorize(id, "AcquireDisk", {{"owner", owner}, {"disk", path}},
                  [this, id, owner, path, mode = *parsed, from = caller()] {
                      resolve_disks(id, from, true, {path}, true, [this, id, owner, mode](const auto &disks) {
                          requests_.acquire(id, owner, disks[0].value, lease_resource_name(disks[0].value), mode,
                                           disks[0].aliases);
                      });
                  });
    });
}

void ManagerObject::ReleaseDisk(sdbus::Result<> &&result, std::string owner, std::string disk) {
    guarded(result, "ReleaseDisk", [&] {
        check_owner(owner);
        std::string path = lexical_disk(disk);
        RequestId id = remember(std::move(result));
        const sdbus::Message *message = getObject().getCurrentlyProcessedMessage();
        bool interactive = message && allows_interactive_authorization(*message);
        authorize(id, "ReleaseDisk", {{"owner", owner}, {"disk", path}},
                  [this, id, owner, path, interactive, from = caller()] {
                      resolve_disks(id, from, true, {path}, false, [this, id, owner, from, interactive, path](const auto &disks) {
                          std::vector<std::string> names{disks[0].value};
                          names.insert(names.end(), disks[0].aliases.begin(), disks[0].aliases.end());
                          names.push_back(path);
                          if (auto held = state_.registry().lease_to_release(owner, names))
                              return requests_.release(id, owner, *held);
                          std::string resource = lease_resource_name(disks[0].value);
                          // Nobody here holds it: what would be released is an
                          // orphan whose owner is unknown, which only an
                          // administrator decides (org.vmlease.manage).
                          authorizer_.check({from, interactive, "org.vmlease.manage",
                                             {{"owner", owner}, {"disk", disks[0].value}, {"orphan", "true"}}},
                                            [this, id, owner, resource](std::optional<ApiError> error) {
                                                if (error)
                                                    return answer_error(id, *error);
                                                dispatch(id, [&] { requests_.release(id, owner, resource); });
                                            });
                      });
                  });
    });
}

void ManagerObject::RegisterMachine(sdbus::Result<sdbus::ObjectPath> &&result, std::string owner,
                                    std::vector<sdbus::Struct<std::string, std::string>> disks,
                                    std::map<std::string, sdbus::Variant> options) {
    guarded(result, "RegisterMachine", [&] {
        check_owner(owner);
        if (disks.size() > kMaxDisksPerMachine)
            throw to_dbus({ErrorKind::LimitsExceeded, "at most " + std::to_string(kMaxDisksPerMachine) +
                                                          " disks per machine, not " + std::to_string(disks.size())});
        std::vector<DiskRule> rules;
        std::vector<std::string> paths;
        std::string listed;
        for (const auto &d : disks) {
            DiskRule rule;
            rule.path = lexical_disk(d.get<0>());
            auto mode = lease_mode_from_string(d.get<1>());
            if (!mode)
                throw invalid_args("mode of " + quoted(d.get<0>()) + " must be \"exclusive\", \"shared\" or \"none\", not " +
                                   quoted(d.get<1>()));
            rule.mode = *mode;
            for (const auto &r : rules)
                if (r.path == rule.path)
                    throw invalid_args("disk " + quoted(rule.path) + " is listed twice");
            rules.push_back(rule);
            paths.push_back(rule.path);
            listed += (listed.empty() ? "" : ",") + rule.path;
        }
        uint32_t grace = kDefaultGraceSeconds;
        for (const auto &[key, value] : options) {
            if (key != "grace_seconds")
                throw invalid_args("unknown option " + quoted(key) + ": RegisterMachine takes grace_seconds");
            if (value.peekValueType() != "u")
                throw invalid_args("grace_seconds must be of type u, not " + value.peekValueType());
            grace = value.get<uint32_t>();
            if (grace < 1 || grace > 86400)
                throw invalid_args("grace_seconds must be 1..86400, not " + std::to_string(grace));
        }
        RequestId id = remember(std::move(result));
        authorize(id, "RegisterMachine", {{"owner", owner}, {"disk", listed}},
                  [this, id, owner, rules, paths, grace, from = caller()] {
                      resolve_disks(id, from, true, paths, true, [this, id, owner, rules, grace](const auto &disks) {
                          auto canonical = rules;
                          for (size_t i = 0; i < canonical.size(); i++) {
                              canonical[i].path = disks[i].value;
                              canonical[i].aliases = disks[i].aliases;
                              for (size_t j = 0; j < i; j++)
                                  if (canonical[j].path == disks[i].value)
                                      return answer_error(id, {ErrorKind::InvalidArgs,
                                                               "disks " + quoted(rules[j].path) + " and " +
                                                                   quoted(rules[i].path) + " are the same disk"});
                          }
                          requests_.reserve(id, owner, canonical, grace);
                      });
                  });
    });
}

void ManagerObject::ReleaseMachine(sdbus::Result<> &&result, std::string owner) {
    guarded(result, "ReleaseMachine", [&] {
        check_owner(owner);
        RequestId id = remember(std::move(result));
        authorize(id, "ReleaseMachine", {{"owner", owner}}, [this, id, owner] { requests_.release_owner(id, owner); });
    });
}

void ManagerObject::ResumeMachine(sdbus::Result<> &&result, std::string owner,
                                  std::map<std::string, sdbus::Variant> options) {
    guarded(result, "ResumeMachine", [&] {
        check_owner(owner);
        reject_options(options, "ResumeMachine");
        RequestId id = remember(std::move(result));
        authorize(id, "ResumeMachine", {{"owner", owner}}, [this, id, owner] { requests_.resume(id, owner); });
    });
}

std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, sdbus::ObjectPath>>
ManagerObject::ListLeases() {
    // Built once per change, not once per call: desktop tools poll this.
    if (list_cache_)
        return *list_cache_;
    auto &out = list_cache_.emplace();
    for (const auto &[resource, lease] : state_.registry().leases()) {
        sdbus::ObjectPath path(lease_object_path(resource));
        if (lease.owners.empty())
            out.emplace_back(lease.disk, resource, std::string(), to_string(lease.mode), to_string(lease.state), path);
        for (const auto &owner : lease.owners)
            out.emplace_back(lease.disk, resource, owner, to_string(lease.mode), to_string(lease.state), path);
    }
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, uint32_t, uint32_t, sdbus::ObjectPath, bool>>
ManagerObject::ListMachines() {
    std::vector<sdbus::Struct<std::string, std::string, uint32_t, uint32_t, sdbus::ObjectPath, bool>> out;
    for (const auto &[name, m] : state_.tracker().machines()) {
        uint32_t held = 0;
        for (const auto &d : m.disks)
            held += d.state == MachineDisk::State::Held;
        out.emplace_back(name, m.info.machine_class, m.info.leader, held, sdbus::ObjectPath(machine_object_path(name)),
                         machine_protected(m));
    }
    return out;
}

void ManagerObject::release_from_machine_object(sdbus::Result<> &&result, const std::string &name,
                                                const sdbus::Message &message) {
    guarded(result, "Release", [&] {
        RequestId id = remember(std::move(result));
        authorize(
            id, "Release", {{"owner", name}}, [this, id, name] { requests_.release_owner(id, name); },
            "org.vmlease.Machine", &message);
    });
}

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

void ManagerObject::InspectDisk(InspectResult &&result, std::string disk) {
    guarded(result, "InspectDisk", [&] {
        std::string path = lexical_disk(disk);
        std::string from = caller();
        // Anyone may ask: bounded per caller and in all, so that nobody can
        // queue unbounded work (every answer reads a lease file).
        if (inspecting_.size() >= kMaxInspections)
            throw to_dbus({ErrorKind::LimitsExceeded, "too many disks are being inspected; try again later"});
        if (inspections_per_caller_[from] >= kMaxInspectionsPerCaller)
            throw to_dbus({ErrorKind::LimitsExceeded, "this caller already has " +
                                                          std::to_string(kMaxInspectionsPerCaller) +
                                                          " InspectDisk calls in progress"});
        RequestId id = remember(std::move(result));
        inspecting_[id] = from;
        inspections_per_caller_[from]++;
        authorize(id, "InspectDisk", {{"disk", path}}, [this, id, path, from] {
            resolve_disks(id, from, false, {path}, false,
                          [this, id](const auto &disks) { requests_.inspect(id, lease_resource_name(disks[0].value)); });
        });
    });
}

void ManagerObject::IdentifyDisk(IdentifyResult &&result, std::string disk) {
    guarded(result, "IdentifyDisk", [&] {
        std::string path = lexical_disk(disk);
        std::string from = caller();
        RequestId id = remember(std::move(result));
        // Bounded like every lookup an open method makes (DiskResolver's
        // budget for unauthorized callers); nothing else is read.
        authorize(id, "IdentifyDisk", {{"disk", path}}, [this, id, path, from] {
            resolve_disks(id, from, false, {path}, true, [this, id](const auto &disks) {
                auto it = pending_.find(id);
                if (it == pending_.end())
                    return;
                std::vector<sdbus::Struct<std::string, std::string>> aliases;
                for (const auto &a : disks[0].aliases)
                    aliases.push_back({a, lease_resource_name(a)});
                auto &r = std::get<IdentifyResult>(it->second);
                emit_safely("IdentifyDisk reply", [&] {
                    r.returnResults(disks[0].value, lease_resource_name(disks[0].value), aliases);
                });
                pending_.erase(it);
            });
        });
    });
}

void ManagerObject::done_inspecting(RequestId id) {
    auto it = inspecting_.find(id);
    if (it == inspecting_.end())
        return;
    if (--inspections_per_caller_[it->second] == 0)
        inspections_per_caller_.erase(it->second);
    inspecting_.erase(it);
}

void ManagerObject::CleanupLeases(sdbus::Result<std::vector<std::string>> &&result, bool dry_run) {
    guarded(result, "CleanupLeases", [&] {
        RequestId id = remember(std::move(result));
        authorize(id, "CleanupLeases", {{"dry_run", dry_run ? "true" : "false"}},
                  [this, id, dry_run] { requests_.clean_up(id, dry_run); });
    });
}

void ManagerObject::Reload(sdbus::Result<> &&result) {
    guarded(result, "Reload", [&] {
        RequestId id = remember(std::move(result));
        authorize(id, "Reload", {}, [this, id] { requests_.reload(id); });
    });
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
