// One simulated host: its own sanlock daemon, system bus and vmleased, all
// pointed at a lease directory that several hosts may share.
#pragma once

#include "harness.hpp"
#include "manager_client.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <signal.h>
#include <tuple>
#include <iostream>
#include <memory>
#include <vector>

namespace vmtest {

// Where one test's hosts live: a temporary directory with an (empty) shared
// lease directory in it. Makes this process a subreaper for what they leave.
struct Site {
    explicit Site(const std::string &prefix, bool public_dir = false) : root(prefix) {
        become_subreaper();
        if (public_dir)
            root.make_public();
        std::filesystem::create_directories(lease_dir());
    }
    std::string lease_dir() const { return root / "leases"; }
    TempDir root;
};

struct HostOptions {
    std::string extra_yaml;    // appended to the agent's configuration
    bool with_machined = false;  // the real systemd-machined on the host's bus
    bool start_agent = true;   // false: call start_agent() later
    std::vector<std::string> agent_wrapper;          // see AgentConfig
    std::map<std::string, std::string> agent_env;
};

struct Host {
    Host(const std::string &root, const std::string &lease_dir, uint32_t host_id, HostOptions options = {})
        : dir(root + "/host" + std::to_string(host_id)), sanlock(dir + "/sanlock") {
        if (options.with_machined) {
            machined = std::make_unique<MachinedEnv>(dir + "/m");
            bus_address = machined->address();
        } else {
            own_bus = std::make_unique<DbusDaemon>(dir + "/bus");
            bus_address = own_bus->address();
        }
        config.host_id = host_id;
        config.lease_dir = lease_dir;
        config.extra_yaml = options.extra_yaml;
        config.wrapper = options.agent_wrapper;
        config.env = options.agent_env;
        if (options.start_agent)
            start_agent();
    }
    void start_agent() {
        agent = std::make_unique<Agent>(dir + "/agent", bus_address, sanlock, config);
        client = std::make_unique<ManagerClient>(bus_address);
    }
    ~Host() {
        client.reset();
        agent.reset();
        machined.reset();
    }
    // Fail the running test on what went wrong since the last check: a
    // sanitizer report or an unclean exit of the agent or of a killpath
    // helper run (the destructors check too, attributing it to the suite).
    void check() {
        if (agent)
            agent->check();
        sanlock.check_helpers();
    }

    std::string dir;
    SanlockDaemon sanlock;
    std::unique_ptr<DbusDaemon> own_bus;
    std::unique_ptr<MachinedEnv> machined;
    std::string bus_address;
    AgentConfig config;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<ManagerClient> client;
};

// A VM-like process: holds `file` open (read-write or read-only) and sleeps.
inline Child vm_process(const std::string &dir, const std::string &name, const std::string &file = "",
                        bool writable = true) {
    std::string script = file.empty() ? "exec sleep 600"
                                      : std::string("exec 3") + (writable ? "<>" : "<") + "'" + file + "'; exec sleep 600";
    return Child({"/bin/bash", "-c", script}, {}, dir + "/" + name + ".log");
}

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

// The one fixture for suites with hosts: hosts that share one lease
// directory, started once for the suite (`Suite` is the derived fixture, so
// each suite has its own hosts), plus hosts a single test starts with
// test_host(). After every test each host is checked (sanitizer reports,
// unclean exits); a failed test prints every agent's log.
template <typename Suite>
class HostsSuite : public ::testing::Test {
protected:
    // The suite's directory and its (empty) shared lease directory.
    static void make_site(const std::string &prefix) {
        become_subreaper();
        root = std::make_unique<TempDir>(prefix);
        lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
    }
    // Hosts 1..options.size(), each with its options; each must join.
    static void start_hosts(const std::vector<HostOptions> &options) {
        for (size_t i = 0; i < options.size(); i++) {
            hosts.push_back(std::make_unique<Host>(root->path(), lease_dir, static_cast<uint32_t>(i + 1), options[i]));
            ASSERT_TRUE(hosts.back()->client->wait_property("LockspaceState", "joined")) << hosts.back()->agent->log();
        }
        h1 = hosts[0].get();
        h2 = hosts.size() > 1 ? hosts[1].get() : nullptr;
    }
    // A host for the running test only (one that must start after a fault,
    // or see the shared files through another path): checked and its log
    // shown like the suite's, stopped when the test ends.
    static Host &test_host(uint32_t host_id, const std::string &its_lease_dir, HostOptions options = {}) {
        test_hosts.push_back(std::make_unique<Host>(root->path(), its_lease_dir, host_id, options));
        return *test_hosts.back();
    }
    // Stop the test's own hosts now (checked first), before something they
    // use goes: a mount, a journald. TearDown does it otherwise.
    static void stop_test_hosts() {
        for (const auto &h : test_hosts)
            h->check();
        while (!test_hosts.empty())
            test_hosts.pop_back();
    }
    static void TearDownTestSuite() {
        while (!hosts.empty())
            hosts.pop_back();  // the last started stops first
        h1 = h2 = nullptr;
        root.reset();
    }
    void TearDown() override {
        for (const auto *list : {&hosts, &test_hosts})
            for (const auto &h : *list)
                h->check();
        if (HasFailure())
            for (const auto *list : {&hosts, &test_hosts})
                for (const auto &h : *list)
                    if (h->agent)
                        std::cerr << "--- vmleased log (" << h->dir << ") ---\n" << h->agent->log() << std::endl;
        stop_test_hosts();
    }

    static inline std::unique_ptr<TempDir> root;
    static inline std::string lease_dir;
    static inline std::vector<std::unique_ptr<Host>> hosts;
    static inline std::vector<std::unique_ptr<Host>> test_hosts;
    static inline Host *h1 = nullptr, *h2 = nullptr;
};

// disk, owner, state of every lease a host lists
using Leases = std::set<std::tuple<std::string, std::string, std::string>>;  // disk, owner, state

inline Leases leases_of(Host &h) {
    Leases out;
    for (const auto &l : h.client->ListLeases())
        out.insert({l.get<0>(), l.get<2>(), l.get<4>()});
    return out;
}

// ListMachines' "protected" for `machine`: every disk it should hold a lease for is held.
inline bool listed_protected(Host &h, const std::string &machine) {
    for (const auto &m : h.client->ListMachines())
        if (m.get<0>() == machine)
            return m.get<5>();
    ADD_FAILURE() << machine << " not listed";
    return false;
}

// SIGKILL: a crash on purpose (Agent::crash() exempts it from the clean-exit check).
inline void kill_agent(Host &h) {
    int st = h.agent->crash();
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
}

// Host 2 trying to take `disk`: the D-Bus error name, "" if it got it (and gave it back).
inline std::string intrude(Host &h, const std::string &disk) {
    std::string error = error_of([&] { h.client->AcquireDisk("intruder", disk, "exclusive", {}); });
    if (error.empty())
        h.client->ReleaseDisk("intruder", disk);
    return error;
}

// Configuration that leases every file under `images` a machine holds open read-write.
inline std::string discovery_yaml(const std::string &images) {
    return "discovery:\n  open_files: true\n  include: [\"" + images + "/*\"]\n";
}

// Two hosts, each with the real systemd-machined, whose agents lease every
// image under images() that a machine holds open read-write (discovery).
template <typename Suite>
class MachineHostsSuite : public HostsSuite<Suite> {
protected:
    using Base = HostsSuite<Suite>;
    static void start(const std::string &prefix, const std::string &extra_yaml = "") {
        Base::make_site(prefix);
        std::filesystem::create_directories(images());
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = discovery_yaml(images()) + extra_yaml;
        Base::start_hosts({o, o});
    }
    static std::string images() { return *Base::root / "images"; }
    static std::string image(const std::string &name) {
        std::string path = images() + "/" + name;
        std::ofstream(path).put('x');
        return path;
    }
    static std::string runtime_file(Host &h, const std::string &name) { return h.dir + "/agent/runtime/" + name; }
};

}  // namespace vmtest
