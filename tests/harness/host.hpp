// One simulated host: its own sanlock daemon, system bus and vmleased, all
// pointed at a lease directory that several hosts may share.
#pragma once

#include "harness.hpp"
#include "manager_client.hpp"

#include <memory>

namespace vmtest {

struct Host {
    Host(const std::string &root, const std::string &lease_dir, uint32_t host_id, const std::string &extra_yaml = "")
        : dir(root + "/host" + std::to_string(host_id)), sanlock(dir + "/sanlock"), bus(dir + "/bus") {
        AgentConfig config;
        config.host_id = host_id;
        config.lease_dir = lease_dir;
        config.extra_yaml = extra_yaml;
        agent = std::make_unique<Agent>(dir + "/agent", bus.address(), sanlock, config);
        client = std::make_unique<ManagerClient>(bus.address());
    }
    ~Host() {
        client.reset();
        agent.reset();
    }

    std::string dir;
    SanlockDaemon sanlock;
    DbusDaemon bus;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<ManagerClient> client;
};

// The D-Bus error name of a call that must fail; "" if it succeeded.
template <typename Call>
std::string error_of(Call &&call, std::string *message = nullptr) {
    try {
        call();
    } catch (const sdbus::Error &e) {
        if (message)
            *message = e.getMessage();
        return e.getName();
    }
    return "";
}

}  // namespace vmtest
