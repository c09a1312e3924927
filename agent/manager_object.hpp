// The D-Bus face of vmleased: /org/vmlease (org.vmlease.Manager,
// ObjectManager, Properties) and the per-lease objects below it.
//
// Incoming calls are checked here (arguments, options, limits) and handed to
// the Backend as plain requests; the registry's Steps come back through
// publish(), which turns replies into method returns or errors and changes
// into signals, objects and PropertiesChanged. Nothing here decides anything
// about leases.
#pragma once

#include "core/lease_registry.hpp"
#include "core/machine_tracker.hpp"
#include "disk_resolver.hpp"
#include "lease_object.hpp"
#include "machine_object.hpp"
#include "polkit_authorizer.hpp"
#include "org_vmlease_Manager_adaptor.h"
#include "lease_cleanup.hpp"
#include "sanlock_client.hpp"
#include "udev_monitor.hpp"
#include "vmlease_names.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <variant>

namespace vmlease {

using names::kBusName;
using names::kManagerInterface;
using names::kManagerPath;
// InspectDisk reads a lease file through sanlock for anyone who asks.
inline constexpr size_t kMaxInspectionsPerCaller = 4;
inline constexpr size_t kMaxInspections = 32;

// What the D-Bus layer asks of the daemon, once a call is parsed and its
// caller authorized. Every request is answered by a Reply with its id in a
// Step the daemon publishes (ManagerObject::publish), never directly.
class Requests {
public:
    virtual ~Requests() = default;
    virtual void acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                         LeaseMode mode, const std::vector<std::string> &aliases) = 0;
    virtual void release(RequestId id, const std::string &owner, const std::string &resource) = 0;
    virtual void release_owner(RequestId id, const std::string &owner) = 0;
    virtual void resume(RequestId id, const std::string &owner) = 0;
    virtual void reserve(RequestId id, const std::string &owner, const std::vector<DiskRule> &disks,
                         uint32_t grace_seconds) = 0;
    virtual void inspect(RequestId id, const std::string &resource) = 0;
    virtual void clean_up(RequestId id, bool dry_run) = 0;
    virtual void reload(RequestId id) = 0;
};

// What the D-Bus layer reads to answer properties and listings.
class StateView {
public:
    virtual ~StateView() = default;
    virtual std::vector<std::string> warnings() const = 0;
    virtual const LeaseRegistry &registry() const = 0;
    virtual const MachineTracker &tracker() const = 0;
    virtual const SanlockSettings &sanlock_settings() const = 0;
};

class ManagerObject final : public sdbus::AdaptorInterfaces<org::vmlease::Manager_adaptor, sdbus::ObjectManager_adaptor,
                                                            sdbus::Properties_adaptor> {
public:
    ManagerObject(sdbus::IConnection &connection, SignalGate &gate, Requests &requests, const StateView &state,
                  DiskResolver &resolver, std::string version);
    ~ManagerObject();

    // Turn a registry Step's replies and changes into D-Bus traffic.
    void publish(const Step &step);
    // DeviceAdded / DeviceRemoved.
    void device_changed(const DeviceEvent &event);

private:
    // org.vmlease.Manager
    void AcquireDisk(sdbus::Result<sdbus::ObjectPath> &&result, std::string owner, std::string disk, std::string mode,
                     std::map<std::string, sdbus::Variant> options) override;
    void ReleaseDisk(sdbus::Result<> &&result, std::string owner, std::string disk) override;
    void RegisterMachine(sdbus::Result<sdbus::ObjectPath> &&result, std::string owner,
                         std::vector<sdbus::Struct<std::string, std::string>> disks,
                         std::map<std::string, sdbus::Variant> options) override;
    void ReleaseMachine(sdbus::Result<> &&result, std::string owner) override;
    void ResumeMachine(sdbus::Result<> &&result, std::string owner,
                       std::map<std::string, sdbus::Variant> options) override;
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, sdbus::ObjectPath>>
    ListLeases() override;
    std::vector<sdbus::Struct<std::string, std::string, uint32_t, uint32_t, sdbus::ObjectPath, bool>> ListMachines()
        override;
    void InspectDisk(sdbus::Result<std::string, std::string,
                                   std::vector<sdbus::Struct<uint64_t, uint64_t, std::string, std::string>>, uint64_t>
                         &&result,
                     std::string disk) override;
    void IdentifyDisk(
        sdbus::Result<std::string, std::string, std::vector<sdbus::Struct<std::string, std::string>>> &&result,
        std::string disk) override;
    void CleanupLeases(sdbus::Result<std::vector<std::string>> &&result, bool dry_run) override;
    void Reload(sdbus::Result<> &&result) override;

    std::string Version() override { return version_; }
    uint32_t HostId() override { return state_.sanlock_settings().host_id; }
    std::string Lockspace() override { return state_.sanlock_settings().lockspace; }
    std::string LeaseDirectory() override { return state_.sanlock_settings().lease_dir; }
    std::string LockspaceState() override { return to_string(state_.registry().lockspace_state()); }
    uint32_t LeaseCount() override { return static_cast<uint32_t>(state_.registry().leases().size()); }
    std::vector<std::string> Warnings() override { return state_.warnings(); }
    uint32_t MachineCount() override { return static_cast<uint32_t>(state_.tracker().machines().size()); }

    using InspectResult = sdbus::Result<std::string, std::string,
                                        std::vector<sdbus::Struct<uint64_t, uint64_t, std::string, std::string>>, uint64_t>;
    using IdentifyResult = sdbus::Result<std::string, std::string, std::vector<sdbus::Struct<std::string, std::string>>>;
    using PendingResult = std::variant<sdbus::Result<sdbus::ObjectPath>, sdbus::Result<>, InspectResult,
                                       sdbus::Result<std::vector<std::string>>, IdentifyResult>;
    RequestId remember(PendingResult result);
    // The unique bus name of the caller whose call is being handled.
    std::string caller() const;
    // Off the loop and bounded (DiskResolver): the canonical names of
    // `paths` (lexically normalised), then `go` with them; or an error reply.
    // `taking`: a device path with no device behind it is refused.
    void resolve_disks(RequestId id, const std::string &caller, bool authorized, std::vector<std::string> paths,
                       bool taking,
                       std::function<void(const std::vector<DiskName> &disks)> go);
    void dispatch(RequestId id, const std::function<void()> &fn);
    void answer_error(RequestId id, const ApiError &error);
    void done_inspecting(RequestId id);
    // Look the method up in the authorization table and run `go` once the
    // caller is allowed (now for open methods, after polkit otherwise).
    // `message` is the call being authorized (default: the Manager's own).
    void authorize(RequestId id, const char *method, std::map<std::string, std::string> details,
                   std::function<void()> go, const char *interface = kManagerInterface,
                   const sdbus::Message *message = nullptr);
    void release_from_machine_object(sdbus::Result<> &&result, const std::string &name, const sdbus::Message &message);
    void sync_machine_objects(const MachineChange &change);
    void sync_lease_objects(const LeaseChange &change);
    void emit_property_changes(bool lockspace_changed);

    sdbus::IConnection &connection_;
    Requests &requests_;
    const StateView &state_;
    DiskResolver &resolver_;
    PolkitAuthorizer authorizer_;
    std::string version_;
    RequestId next_request_ = 1;
    std::map<RequestId, PendingResult> pending_;
    // InspectDisk calls with sanlock, by caller: bounded, since anyone may call it.
    std::map<RequestId, std::string> inspecting_;
    std::map<std::string, size_t> inspections_per_caller_;
    std::map<std::string, std::unique_ptr<LeaseObject>> lease_objects_;
    std::map<std::string, std::unique_ptr<MachineObject>> machine_objects_;
    uint32_t published_lease_count_ = 0;
    uint32_t published_machine_count_ = 0;
    std::vector<std::string> published_warnings_;
    // ListLeases' answer until the next published step.
    std::optional<std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string,
                                            sdbus::ObjectPath>>>
        list_cache_;
};

}  // namespace vmlease
