#include "lease_object.hpp"

#include "core/owner_name.hpp"
#include "core/disk_path.hpp"
#include "log.hpp"
#include "vmlease_names.hpp"

namespace vmlease {

std::string lease_object_path(const std::string &resource) { return names::kLeasePathPrefix + resource; }

LeaseObject::LeaseObject(sdbus::IConnection &connection, const Lease &lease, std::string lease_file)
    : AdaptorInterfaces(connection, lease_object_path(lease.resource)), lease_(lease), lease_file_(std::move(lease_file)) {
    registerAdaptor();
    emitInterfacesAddedSignal({org::vmlease::Lease_adaptor::INTERFACE_NAME});
}

LeaseObject::~LeaseObject() {
    try {
        emitInterfacesRemovedSignal({org::vmlease::Lease_adaptor::INTERFACE_NAME});
    } catch (const std::exception &e) {
        log_warning(std::string("cannot announce removal of a lease object: ") + e.what());
    }
    unregisterAdaptor();
}

std::string LeaseObject::Owner() {
    return join_owners(lease_.owners, ",");
}

std::vector<sdbus::Struct<std::string, std::string>> LeaseObject::Aliases() {
    std::vector<sdbus::Struct<std::string, std::string>> out;
    for (const auto &a : lease_.aliases)
        out.push_back({a, lease_resource_name(a)});
    return out;
}

void LeaseObject::update(const Lease &lease) {
    bool owners_changed = lease.owners != lease_.owners;
    bool state_changed = lease.state != lease_.state;
    lease_ = lease;
    std::vector<std::string> changed;
    if (owners_changed)
        changed.push_back("Owner");
    if (state_changed)
        changed.push_back("State");
    if (!changed.empty())
        emitPropertiesChangedSignal(org::vmlease::Lease_adaptor::INTERFACE_NAME, changed);
}

}  // namespace vmlease
