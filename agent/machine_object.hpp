// /org/vmlease/machine/<escaped name>: one machine vmlease protects, as the
// machine tracker sees it. Release() is handed to the Manager object, which
// authorizes it like ReleaseMachine.
#pragma once

#include "core/machine_tracker.hpp"
#include "org_vmlease_Machine_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>

namespace vmlease {

std::string machine_object_path(const std::string &name);

class MachineObject final : public sdbus::AdaptorInterfaces<org::vmlease::Machine_adaptor, sdbus::ManagedObject_adaptor,
                                                            sdbus::Properties_adaptor> {
public:
    // `message` is this object's call (sdbus-c++ keeps the message being
    // processed per object, so the Manager cannot see it).
    using ReleaseHandler =
        std::function<void(sdbus::Result<> &&result, const std::string &name, const sdbus::Message &message)>;
    MachineObject(sdbus::IConnection &connection, const Machine &machine, ReleaseHandler on_release);
    ~MachineObject();
    // Take the tracker's current view; emits PropertiesChanged for what differs.
    void update(const Machine &machine);

private:
    void Release(sdbus::Result<> &&result) override;
    std::string Name() override { return machine_.info.name; }
    std::string Class() override { return machine_.info.machine_class; }
    uint32_t Leader() override { return machine_.info.leader; }
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>> Disks() override;
    std::string LockFailureAction() override { return to_string(machine_.on_lockfailure); }
    std::string State() override { return machine_state(machine_); }
    bool Protected() override { return machine_protected(machine_); }
    std::vector<sdbus::Struct<std::string, std::string, uint64_t>> UnprotectedDisks() override;

    Machine machine_;
    ReleaseHandler on_release_;
};

}  // namespace vmlease
