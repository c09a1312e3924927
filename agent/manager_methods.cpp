// org.vmlease.Manager's methods: each parses its arguments (InvalidArgs),
// is authorized (core/authorization_table.cpp) and hands a request to the
// daemon, whose Step answers it (manager_publish.cpp); listings read state.
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

}  // namespace

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

}  // namespace vmlease
