// /org/vmlease/lease/<resource>: one held lease on the bus (org.vmlease.Lease),
// announced by ObjectManager's InterfacesAdded when made and InterfacesRemoved
// when destroyed. It only shows a Lease record; ManagerObject makes, updates
// and drops these as the registry's changes say.
#pragma once

#include "core/lease_registry.hpp"
#include "org_vmlease_Lease_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

#include <string>
#include <vector>

namespace vmlease {

std::string lease_object_path(const std::string &resource);

class LeaseObject final : public sdbus::AdaptorInterfaces<org::vmlease::Lease_adaptor, sdbus::ManagedObject_adaptor,
                                                          sdbus::Properties_adaptor> {
public:
    LeaseObject(sdbus::IConnection &connection, const Lease &lease, std::string lease_file);
    ~LeaseObject();
    // PropertiesChanged for what differs (Owner, State).
    void update(const Lease &lease);

private:
    std::string Disk() override { return lease_.disk; }
    std::string Resource() override { return lease_.resource; }
    std::string LeaseFile() override { return lease_file_; }
    std::string Owner() override;
    std::string Mode() override { return to_string(lease_.mode); }
    std::string State() override { return to_string(lease_.state); }
    std::vector<sdbus::Struct<std::string, std::string>> Aliases() override;

    Lease lease_;
    std::string lease_file_;
};

}  // namespace vmlease
