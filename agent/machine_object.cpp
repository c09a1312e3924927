#include "machine_object.hpp"

#include "log.hpp"

#include <systemd/sd-bus.h>

#include <cstdlib>

namespace vmlease {
namespace {

const char *to_string(MachineDisk::Source s) {
    switch (s) {
    case MachineDisk::Source::Rule: return "rule";
    case MachineDisk::Source::Discovered: return "discovered";
    case MachineDisk::Source::Reservation: return "reservation";
    case MachineDisk::Source::Restored: return "restored";
    }
    return "rule";
}

}  // namespace

std::string machine_object_path(const std::string &name) {
    char *path = nullptr;
    if (sd_bus_path_encode("/org/vmlease/machine", name.c_str(), &path) < 0 || !path)
        throw std::runtime_error("cannot encode an object path for machine " + name);
    std::string out(path);
    free(path);
    return out;
}

MachineObject::MachineObject(sdbus::IConnection &connection, const Machine &machine, ReleaseHandler on_release)
    : AdaptorInterfaces(connection, machine_object_path(machine.info.name)), machine_(machine),
      on_release_(std::move(on_release)) {
    registerAdaptor();
    emitInterfacesAddedSignal({org::vmlease::Machine_adaptor::INTERFACE_NAME});
}

MachineObject::~MachineObject() {
    try {
        emitInterfacesRemovedSignal({org::vmlease::Machine_adaptor::INTERFACE_NAME});
    } catch (const std::exception &e) {
        log_warning(std::string("cannot announce removal of a machine object: ") + e.what());
    }
    unregisterAdaptor();
}

void MachineObject::Release(sdbus::Result<> &&result) {
    const sdbus::Message *message = getObject().getCurrentlyProcessedMessage();
    if (!message) {
        result.returnError(sdbus::Error("org.vmlease.Error.Failed", "no message is being processed"));
        return;
    }
    on_release_(std::move(result), machine_.info.name, *message);
}

std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>> MachineObject::Disks() {
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>> out;
    for (const auto &d : machine_.disks)
        out.emplace_back(d.disk, to_string(d.mode), to_string(d.state), to_string(d.source));
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, uint64_t>> MachineObject::UnprotectedDisks() {
    std::vector<sdbus::Struct<std::string, std::string, uint64_t>> out;
    for (const auto &d : machine_.disks)
        if (d.state != MachineDisk::State::Held)
            out.emplace_back(d.disk, d.error.empty() ? std::string(to_string(d.state))
                                                     : std::string(to_string(d.state)) + ": " + d.error,
                             d.unprotected_since);
    return out;
}

void MachineObject::update(const Machine &machine) {
    std::vector<std::string> changed;
    auto before_disks = Disks();
    auto before_unprotected = UnprotectedDisks();
    bool before_protected = Protected();
    std::string before_state = State();
    bool leader_changed = machine.info.leader != machine_.info.leader;
    bool class_changed = machine.info.machine_class != machine_.info.machine_class;
    machine_ = machine;
    if (Disks() != before_disks)
        changed.push_back("Disks");
    if (State() != before_state)
        changed.push_back("State");
    if (Protected() != before_protected)
        changed.push_back("Protected");
    if (UnprotectedDisks() != before_unprotected)
        changed.push_back("UnprotectedDisks");
    if (leader_changed)
        changed.push_back("Leader");
    if (class_changed)
        changed.push_back("Class");
    if (!changed.empty())
        emitPropertiesChangedSignal(org::vmlease::Machine_adaptor::INTERFACE_NAME, changed);
}

}  // namespace vmlease
