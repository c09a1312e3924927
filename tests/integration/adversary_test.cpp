// The trust boundaries of THREAT-MODEL.md, tried the way an attacker on the
// host would: an unprivileged user (uid 65534) on the same system bus, a
// caller naming a path on a hung file system, an agent killed and restarted,
// a full runtime directory, leftovers of a crash in the lease directory.
// Real sanlock daemons (two hosts on one lease directory), the real
// systemd-machined and dbus-daemon, the real vmleased.
#include "faultfs.hpp"
#include "host.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

using namespace vmtest;

namespace {


std::string name_owner(const std::string &address, const std::string &name) {
    std::string out;
    run({"/usr/bin/busctl", "--address=" + address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
         "org.freedesktop.DBus", "GetNameOwner", "s", name},
        {}, &out, 10s);
    // busctl prints: s ":1.7"
    size_t open = out.find("\":"), close = open == std::string::npos ? open : out.find('"', open + 1);
    return close == std::string::npos ? "" : out.substr(open + 1, close - open - 1);
}

// Runs tests/support/forge-signals (as uid 65534 unless `as_root`); returns the sender it used.
std::string forge(const std::string &address, const std::string &dest, const std::string &machine,
                  const std::string &machined_owner, bool as_root = false) {
    std::vector<std::string> argv{required_env("FORGE_SIGNALS"), address, dest, machine, machined_owner};
    if (!as_root)
        argv = as_user(kNobody, argv);
    std::string out;
    EXPECT_EQ(run(argv, {}, &out, 20s), 0) << out;
    // forge-signals prints: sent as :1.14
    size_t at = out.find("sent as :");
    if (at == std::string::npos)
        return "";
    std::string name = out.substr(at + 8);
    return name.substr(0, name.find_first_of(" \n"));
}

class Adversary : public MachineHostsSuite<Adversary> {
protected:
    static void SetUpTestSuite() {
        start("vml-adv");
        root->make_public();  // the unprivileged user reaches the buses
    }
    void SetUp() override {
        for (auto &h : hosts)
            h->client->clear_events();
    }
};

// An unprivileged user sends every signal the agent acts on, forged, both
// addressed to vmleased (unicast) and to everyone (broadcast): machined left,
// the attacker owns machined's name now, the running VM was removed, a ghost
// machine appeared. The VM keeps its lease and host 2 cannot take the disk.
TEST_F(Adversary, ForgedMachinedSignalsFromAnUnprivilegedUserChangeNoLease) {
    const std::string a = image("forged.img");
    Child vm = vm_process(root->path(), "vm-forged", a);
    ASSERT_EQ(h1->machined->create_machine("vm-forged", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"vm-forged", a}, 20s)) << h1->agent->log();

    std::string agent = name_owner(h1->bus_address, "org.vmlease");
    std::string machined = name_owner(h1->bus_address, "org.freedesktop.machine1");
    ASSERT_FALSE(agent.empty());
    ASSERT_FALSE(machined.empty());
    std::string unicast = forge(h1->bus_address, agent, "vm-forged", machined);
    std::string broadcast = forge(h1->bus_address, "", "vm-forged", machined);
    ASSERT_FALSE(unicast.empty());
    ASSERT_FALSE(broadcast.empty());
    // Had the agent believed them, the release would be under way now: wait for it.
    EXPECT_FALSE(h1->client->wait_for("LeaseReleased", {"vm-forged"}, 3s)) << h1->agent->log();
    EXPECT_EQ(leases_of(*h1), (Leases{{a, "vm-forged", "held"}}));
    EXPECT_EQ(intrude(*h2, a), "org.vmlease.Error.LeaseHeld");
    // It saw the unicast ones (the bus routes broadcasts from a non-owner
    // to nobody who matches on machined's name) and said why it ignored them.
    ASSERT_TRUE(eventually([&] { return h1->agent->log().find("ignoring signal") != std::string::npos; }, 10s))
        << h1->agent->log();
    std::cout << "agent said: " << h1->agent->log().substr(h1->agent->log().find("ignoring signal"), 160) << std::endl;
    std::set<std::string> machines;
    for (const auto &m : h1->client->ListMachines())
        machines.insert(m.get<0>());
    EXPECT_EQ(machines, std::set<std::string>{"vm-forged"});

    // The real machined is still followed: the machine ending releases its lease.
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-forged", a}, 15s)) << h1->agent->log();
}

// A lease orphaned by a killed agent is taken over after its restart only
// for its owner: the state file's, or a running machine's. Nobody else gets
// it, before the restart, during reconciliation or after it.
TEST_F(Adversary, AnOrphanIsAdoptedOnlyForItsOwner) {
    const std::string disk = image("orphan-vm.img"), api = image("orphan-api.img");
    Child vm = vm_process(root->path(), "vm-orphan", disk);
    ASSERT_EQ(h1->machined->create_machine("vm-orphan", vm.pid()).rfind("o ", 0), 0u);
    h1->client->AcquireDisk("alice", api, "exclusive", {});
    ASSERT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{disk, "vm-orphan", "held"}, {api, "alice", "held"}}; },
                           20s))
        << h1->agent->log();

    kill_agent(*h1);
    // The agent is gone: nobody on host 1 can be given either disk.
    EXPECT_NE(error_of([&] { h1->client->AcquireDisk("intruder", disk, "exclusive", {}); }), "");
    // alice's record is lost (the state file names only the machine now), so
    // her orphan can no longer be attributed to anyone.
    std::string state = read_file(runtime_file(*h1, "leases"));
    std::string kept;
    std::istringstream lines(state);
    for (std::string line; std::getline(lines, line);)
        if (line.find("alice") == std::string::npos)
            kept += line + "\n";
    write_file(runtime_file(*h1, "leases"), kept);

    // While the agent starts, joins and reconciles, an intruder keeps asking.
    std::atomic<bool> stop{false};
    std::atomic<int> granted{0}, asked{0};
    std::thread intruder([&] {
        while (!stop) {
            for (const auto &d : {disk, api}) {
                try {
                    ManagerClient c(h1->bus_address);
                    c.AcquireDisk("intruder", d, "exclusive", {});
                    granted++;
                } catch (const sdbus::Error &) {
                }
                asked++;
            }
            std::this_thread::sleep_for(20ms);
        }
    });
    h1->agent->start();
    bool back = eventually([&] { return leases_of(*h1) == Leases{{disk, "vm-orphan", "held"}}; }, 20s);
    std::this_thread::sleep_for(1s);
    stop = true;
    intruder.join();
    std::cout << "intruder asked " << asked << " times while the agent restarted; granted " << granted << std::endl;
    EXPECT_EQ(granted, 0);
    ASSERT_TRUE(back) << h1->agent->log();

    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("intruder", api, "exclusive", {}); }, &message),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(message.find("earlier vmleased"), std::string::npos) << message;
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("intruder", disk, "exclusive", {}); }),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_EQ(intrude(*h2, api), "org.vmlease.Error.LeaseHeld");
    EXPECT_EQ(intrude(*h2, disk), "org.vmlease.Error.LeaseHeld");

    // The administrator's way out: releasing the disk gives the orphan back.
    h1->client->ReleaseDisk("alice", api);
    EXPECT_EQ(error_of([&] { h1->client->ReleaseDisk("alice", api); }), "org.vmlease.Error.NoSuchLease");
    EXPECT_EQ(intrude(*h2, api), "");
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-orphan", disk}, 15s)) << h1->agent->log();
}

// Temporary files a crashed agent (or a reused pid in a container) left in
// the lease directory, under the names the agent would pick, are no "held
// by another client": the VM gets its lease and is not terminated. This
// host's leftovers are removed at start; other hosts' are left alone.
TEST_F(Adversary, StaleTemporaryFilesAreNoConflict) {
    pid_t pid = h1->agent->child().pid();
    size_t planted = 0;
    for (const auto &task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        write_file(lease_dir + "/.vmlease-tmp.1." + std::to_string(pid) + "." + task.path().filename().string(), "");
        planted++;
    }
    write_file(lease_dir + "/.vmlease-tmp.2.4242.4242", "");
    const std::string disk = image("stale.img");
    Child vm = vm_process(root->path(), "vm-stale", disk);
    ASSERT_EQ(h1->machined->create_machine("vm-stale", vm.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"vm-stale", disk}, 20s)) << h1->agent->log();
    // Protected: its one disk's outcome is in, and it is the lease, not a conflict.
    EXPECT_TRUE(eventually([&] { return listed_protected(*h1, "vm-stale"); }, 5s));
    EXPECT_FALSE(h1->client->wait_for("LeaseConflict", {"vm-stale"}, 0s));
    EXPECT_TRUE(vm.running());

    ASSERT_EQ(h1->agent->stop(), 0);
    h1->agent->start();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined")) << h1->agent->log();
    EXPECT_TRUE(eventually([&] {
        return h1->agent->log().find("removed " + std::to_string(planted) + " temporary file(s)") != std::string::npos;
    }, 10s)) << h1->agent->log();
    for (const auto &e : std::filesystem::directory_iterator(lease_dir))
        EXPECT_NE(e.path().filename().string().rfind(".vmlease-tmp.1.", 0), 0u) << e.path();
    EXPECT_TRUE(std::filesystem::exists(lease_dir + "/.vmlease-tmp.2.4242.4242"));
    std::filesystem::remove(lease_dir + "/.vmlease-tmp.2.4242.4242");
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-stale", disk}, 15s)) << h1->agent->log();
}

// A disk path on a file system that stops answering (even stat(2) hangs, as
// on a dead NFS server): the call that names it ends with an error after
// its bound, and meanwhile the agent answers everyone else at once.
TEST_F(Adversary, APathOnAHungFileSystemDoesNotStopTheAgent) {
    std::filesystem::create_directories(*root / "hung-backing");
    std::filesystem::create_directories(*root / "hung");
    write_file(*root / "hung-backing/disk.img", "x");
    FaultFs fs(*root / "hung-backing", *root / "hung", *root / "hung-faultfs.log");
    const std::string path = *root / "hung/disk.img";
    fs.set("hangmeta");

    auto t0 = std::chrono::steady_clock::now();
    // InspectDisk needs no authorization: any user may try it. AcquireDisk by root.
    Child inspect(as_user(kNobody, {required_env("CALL_AS"), "InspectDisk", path}),
                  {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, *root / "hung-inspect.log");
    Child flood(as_user(kNobody, {required_env("CALL_AS"), "--repeat", "8", "InspectDisk", path}),
                {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, *root / "hung-flood.log");
    Child acquire({required_env("CALL_AS"), "AcquireDisk", "vm-hung", path, "exclusive"},
                  {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, *root / "hung-acquire.log");
    double worst_ms = 0;
    for (int i = 0; i < 40; i++) {
        auto c0 = std::chrono::steady_clock::now();
        h1->client->Get("org.vmlease.Manager", "LockspaceState");
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count());
        std::this_thread::sleep_for(50ms);
    }
    std::cout << "property Get by root while lookups hang: worst " << worst_ms << " ms of 40" << std::endl;
    EXPECT_LT(worst_ms, 100.0);

    ASSERT_NE(inspect.wait(30s), -1);
    ASSERT_NE(acquire.wait(30s), -1);
    ASSERT_NE(flood.wait(30s), -1);
    auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string inspected = read_file(inspect.log_path()), acquired = read_file(acquire.log_path()),
                flooded = read_file(flood.log_path());
    std::cout << "InspectDisk: " << inspected << "AcquireDisk: " << acquired << "8 more InspectDisk:\n"
              << flooded << "all answered after " << took << " s" << std::endl;
    EXPECT_NE(inspected.find("took longer than 5 s"), std::string::npos) << inspected;
    EXPECT_NE(acquired.find("took longer than 5 s"), std::string::npos) << acquired;
    // One caller cannot queue unbounded work: past its limit it is refused at once.
    EXPECT_NE(flooded.find("LimitsExceeded"), std::string::npos) << flooded;
    EXPECT_LT(took, 20.0);
    EXPECT_TRUE(leases_of(*h1).empty());
    fs.set("ok");
}

// With the runtime directory full the agent cannot record who owns a new
// lease; it refuses to take one rather than hold something a crash would
// leave unattributable.
TEST_F(Adversary, NoLeaseIsTakenThatTheStateFileDoesNotName) {
    std::string runtime = *root / "full-runtime";
    std::filesystem::create_directories(runtime);
    ASSERT_EQ(mount("tmpfs", runtime.c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
    HostOptions o;
    o.start_agent = false;
    o.agent_env = {{"RUNTIME_DIRECTORY", runtime}};
    {
        Host &h3 = test_host(3, lease_dir, o);
        h3.start_agent();
        ASSERT_TRUE(h3.client->wait_property("LockspaceState", "joined")) << h3.agent->log();
        const std::string first = image("full-1.img"), second = image("full-2.img");
        h3.client->AcquireDisk("owner", first, "exclusive", {});
        // Fill the file system to the last block.
        run({"/bin/sh", "-c", "dd if=/dev/zero of=" + runtime + "/filler bs=4k 2>/dev/null; true"});

        std::string message;
        EXPECT_EQ(error_of([&] { h3.client->AcquireDisk("owner", second, "exclusive", {}); }, &message),
                  "org.vmlease.Error.Failed");
        std::cout << "AcquireDisk with the runtime directory full: " << message << std::endl;
        EXPECT_NE(message.find("cannot record the lease in " + runtime + "/leases"), std::string::npos) << message;
        EXPECT_NE(message.find("nothing was taken"), std::string::npos) << message;
        // What sanlock holds for host 3 is exactly what the state file names.
        std::string status;
        run({required_env("SANLOCK"), "client", "status"}, h3.sanlock.env(), &status, 10s);
        std::string saved = read_file(runtime + "/leases");
        auto resource_of = [&](const std::string &disk) {
            for (const auto &l : h3.client->ListLeases())
                if (l.get<0>() == disk)
                    return l.get<1>();
            return std::string();
        };
        std::string first_res = resource_of(first);
        ASSERT_FALSE(first_res.empty());
        EXPECT_NE(status.find(first_res), std::string::npos) << status;
        EXPECT_NE(saved.find(first_res), std::string::npos) << saved;
        EXPECT_EQ(intrude(*h2, second), "");  // free: host 3 took nothing
        EXPECT_EQ(leases_of(h3).size(), 1u);

        // Room again: the next acquire is recorded first, then taken.
        std::filesystem::remove(runtime + "/filler");
        h3.client->AcquireDisk("owner", second, "exclusive", {});
        EXPECT_NE(read_file(runtime + "/leases").find(second), std::string::npos);
        h3.client->ReleaseMachine("owner");
    }
    stop_test_hosts();  // host 3 writes its state file on the way out
    umount2(runtime.c_str(), MNT_DETACH);
}

// --- machined's own word ----------------------------------------------------------

// Even from machined's own connection, a MachineRemoved is taken at its word
// only once machined confirms it: while GetMachine still knows the machine,
// its lease stays. (machined stand-in: tests/support/machined_template.py.)
TEST(MachinedWord, AMachineRemovedIsConfirmedBeforeTheLeasesGo) {
    Site site("vml-mdword");
    const std::string disk = site.root / "word.img";
    write_file(disk, "x");
    HostOptions o;
    o.start_agent = false;
    o.extra_yaml = "machines:\n  - match: \"vm-*\"\n    disks:\n      - {path: " + disk + ", mode: exclusive}\n";
    Host h(site.root.path(), site.lease_dir(), 1, o);
    DbusMock machined(site.root / "machined", h.bus_address, required_env("MACHINED_TEMPLATE"),
                      "org.freedesktop.machine1");
    h.start_agent();
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined")) << h.agent->log();
    auto control = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(h.bus_address),
                                      "org.freedesktop.machine1", "/org/freedesktop/machine1");
    auto removed = [&] {
        control->callMethod("EmitSignal")
            .onInterface("org.freedesktop.DBus.Mock")
            .withArguments(std::string("org.freedesktop.machine1.Manager"), std::string("MachineRemoved"),
                           std::string("so"),
                           std::vector<sdbus::Variant>{sdbus::Variant(std::string("vm-1")),
                                                       sdbus::Variant(sdbus::ObjectPath(
                                                           "/org/freedesktop/machine1/machine/vm_2d1"))});
    };
    control->callMethod("AddMachine").onInterface("org.freedesktop.DBus.Mock").withArguments(std::string("vm-1"),
                                                                                             uint32_t(getpid()));
    ASSERT_TRUE(h.client->wait_for("LeaseAcquired", {"vm-1", disk}, 20s)) << h.agent->log();

    removed();  // machined says so, but still lists it
    EXPECT_FALSE(h.client->wait_for("LeaseReleased", {"vm-1"}, 3s)) << h.agent->log();
    EXPECT_EQ(leases_of(h), (Leases{{disk, "vm-1", "held"}}));
    EXPECT_TRUE(eventually([&] { return h.agent->log().find("but still has it") != std::string::npos; }, 10s))
        << h.agent->log();

    control->callMethod("ForgetMachine").onInterface("org.freedesktop.DBus.Mock").withArguments(std::string("vm-1"));
    removed();  // now it is gone
    EXPECT_TRUE(h.client->wait_for("LeaseReleased", {"vm-1", disk}, 15s)) << h.agent->log();
}

// --- the installed bus policy ------------------------------------------------------

// With the shipped dbus/org.vmlease.conf, an unprivileged user cannot even
// deliver a signal addressed to vmleased; root can (and vmleased ignores
// it, since root is not machined either).
TEST(BusPolicy, NobodyButRootSendsUnicastSignalsToVmleased) {
    become_subreaper();
    TempDir root("vmlease-sigpolicy");
    root.make_public();
    DbusDaemon bus(root / "bus", required_env("SYSTEM_BUS_POLICY_CONF"),
                   {{"@POLICY@", required_env("VMLEASE_BUS_POLICY")}});
    std::filesystem::create_directories(root / "leases");
    SanlockDaemon sanlock(root / "sanlock");
    AgentConfig config;
    config.lease_dir = root / "leases";
    Agent agent(root / "agent", bus.address(), sanlock, config);
    std::string target = name_owner(bus.address(), "org.vmlease");
    ASSERT_FALSE(target.empty());

    std::string nobody = forge(bus.address(), target, "vm1", ":1.1");
    std::this_thread::sleep_for(1100ms);  // the agent logs one rejection a second
    std::string by_root = forge(bus.address(), target, "vm1", ":1.1", true);
    ASSERT_FALSE(nobody.empty());
    ASSERT_FALSE(by_root.empty());
    ASSERT_TRUE(eventually([&] { return agent.log().find("from " + by_root) != std::string::npos; }, 10s))
        << agent.log();
    EXPECT_EQ(agent.log().find("from " + nobody), std::string::npos) << agent.log();
}

}  // namespace
