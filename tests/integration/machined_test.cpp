// Automatic leases for systemd-machined machines, against the REAL
// systemd-machined (on a private bus, with a systemd1 stand-in), real sanlock
// daemons and the real vmleased.
#include "host.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

using namespace vmtest;

namespace {

const std::string kDbDisk = "/srv/vm/db.img";

std::string images_dir(const TempDir &root) { return root / "images"; }

std::string config_for(const TempDir &root, const std::string &on_conflict = "terminate") {
    return "on_conflict: " + on_conflict +
           "\n"
           "discovery:\n"
           "  open_files: true\n"
           "  include: [\"" +
           images_dir(root) +
           "/*\"]\n"
           "  exclude: [\"" +
           images_dir(root) +
           "/scratch-*\"]\n"
           "machines:\n"
           "  - match: \"db-*\"\n"
           "    disks:\n"
           "      - {path: " +
           kDbDisk + ", mode: exclusive}\n";
}

class Machined : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        become_subreaper();
        root = std::make_unique<TempDir>("vml-md");
        root->make_public();
        lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
        std::filesystem::create_directories(images_dir(*root));
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = config_for(*root);
        h1 = std::make_unique<Host>(root->path(), lease_dir, 1, o);
        ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined")) << h1->agent->log();
    }
    static void TearDownTestSuite() {
        h1.reset();
        root.reset();
    }
    void SetUp() override { h1->client->clear_events(); }
    void TearDown() override {
        if (h1)
            h1->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << h1->agent->log() << std::endl;
    }
    static std::string image(const std::string &name) {
        std::string path = images_dir(*root) + "/" + name;
        std::ofstream(path).put('x');
        return path;
    }

    static inline std::unique_ptr<TempDir> root;
    static inline std::string lease_dir;
    static inline std::unique_ptr<Host> h1;
};

TEST_F(Machined, AMachinesConfiguredDiskIsLeasedAndReleasedWhenTerminated) {
    Child vm = vm_process(root->path(), "db-1");
    auto before = std::chrono::steady_clock::now();
    std::string created = h1->machined->create_machine("db-1", vm.pid());
    ASSERT_EQ(created.rfind("o ", 0), 0u) << created;
    auto acquired = h1->client->wait_event("LeaseAcquired", {"db-1", kDbDisk}, 10s);
    ASSERT_TRUE(acquired) << h1->agent->log();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(acquired->at - before).count();
    std::cout << "CreateMachine -> LeaseAcquired: " << ms << " ms" << std::endl;
    EXPECT_LT(ms, 1000);

    auto machines = h1->client->ListMachines();
    ASSERT_EQ(machines.size(), 1u);
    EXPECT_EQ(machines[0].get<0>(), "db-1");
    EXPECT_EQ(machines[0].get<1>(), "vm");
    EXPECT_EQ(machines[0].get<2>(), static_cast<uint32_t>(vm.pid()));
    EXPECT_EQ(machines[0].get<3>(), 1u);
    EXPECT_EQ(machines[0].get<4>(), "/org/vmlease/machine/db_2d1");
    EXPECT_EQ(h1->client->MachineCount(), 1u);
    auto managed = h1->client->GetManagedObjects();
    ASSERT_EQ(managed.count(sdbus::ObjectPath("/org/vmlease/machine/db_2d1")), 1u);
    auto props = managed.at(sdbus::ObjectPath("/org/vmlease/machine/db_2d1")).at("org.vmlease.Machine");
    EXPECT_EQ(props.at("State").get<std::string>(), "running");
    EXPECT_EQ(props.at("LockFailureAction").get<std::string>(), "poweroff");

    auto leases = h1->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "db-1");

    h1->machined->call("TerminateMachine", {"s", "db-1"});
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"db-1", kDbDisk}, 10s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->wait_for("InterfacesRemoved", {"/org/vmlease/machine/db_2d1"}, 10s));
    EXPECT_TRUE(h1->client->ListLeases().empty());
    EXPECT_TRUE(h1->client->ListMachines().empty());
    EXPECT_NE(vm.wait(10s), -1) << "TerminateMachine did not stop the process";
}

TEST_F(Machined, TheLeaderSimplyExitingReleasesTheLease) {
    Child vm = vm_process(root->path(), "db-2");
    h1->machined->create_machine("db-2", vm.pid());
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"db-2", kDbDisk}, 10s)) << h1->agent->log();
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"db-2", kDbDisk}, 10s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->ListLeases().empty());
}

TEST_F(Machined, DisksOpenForWritingAreDiscoveredAndReadOnlyOnesAreNot) {
    std::string rw = image("web.img"), ro = image("base.img"), scratch = image("scratch-1.img");
    std::string outside = root->path() + "/elsewhere.img";
    std::ofstream(outside).put('x');
    Child writer = vm_process(root->path(), "web-1", rw, true);
    Child reader = vm_process(root->path(), "ro-1", ro, false);
    Child scratcher = vm_process(root->path(), "scr-1", scratch, true);
    Child stranger = vm_process(root->path(), "out-1", outside, true);
    for (auto [name, pid] : {std::pair{"web-1", writer.pid()}, {"ro-1", reader.pid()}, {"scr-1", scratcher.pid()},
                             {"out-1", stranger.pid()}})
        ASSERT_EQ(h1->machined->create_machine(name, pid).rfind("o ", 0), 0u);

    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"web-1", rw}, 10s)) << h1->agent->log();
    // Give discovery a few more rounds (every 2 s) to (wrongly) find the others.
    std::this_thread::sleep_for(5s);
    for (const auto &l : h1->client->ListLeases()) {
        EXPECT_NE(l.get<0>(), ro) << "read-only image leased";
        EXPECT_NE(l.get<0>(), scratch) << "excluded image leased";
        EXPECT_NE(l.get<0>(), outside) << "image outside discovery.include leased";
    }
    auto leases = h1->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "web-1");
    for (auto *c : {&writer, &reader, &scratcher, &stranger})
        c->signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"web-1", rw}, 10s));
}

TEST_F(Machined, ADiskOpenedWhileTheMachineRunsIsLeasedToo) {
    std::string hotplug = image("hotplug.img");
    // The process opens its disk 3 s after the machine was registered.
    Child vm({"/bin/bash", "-c", "sleep 3; exec 3<>'" + hotplug + "'; exec sleep 600"}, {}, root->path() + "/hp.log");
    h1->machined->create_machine("hp-1", vm.pid());
    ASSERT_TRUE(h1->client->wait_for("InterfacesAdded", {"/org/vmlease/machine/hp_2d1"}, 10s));
    EXPECT_TRUE(h1->client->ListLeases().empty());
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"hp-1", hotplug}, 15s)) << h1->agent->log();
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"hp-1", hotplug}, 10s));
}

TEST_F(Machined, MachineReleaseLetsGoOfItsLeasesWhileItRuns) {
    Child vm = vm_process(root->path(), "db-rel");
    h1->machined->create_machine("db-rel", vm.pid());
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"db-rel", kDbDisk}, 10s)) << h1->agent->log();
    const std::string path = "/org/vmlease/machine/db_2drel";

    // Unprivileged callers are refused (no polkit on this bus) and nothing changes.
    std::string out;
    run(as_user(kNobody, {"/usr/bin/busctl", "--address=" + h1->bus_address, "call", "org.vmlease", path,
                          "org.vmlease.Machine", "Release"}),
        {}, &out, 10s);
    EXPECT_EQ(out, "Call failed: Access denied\n");
    EXPECT_TRUE(h1->agent->child().running()) << h1->agent->log();
    // It got as far as asking polkit (none runs on this bus) for the right action.
    EXPECT_NE(h1->agent->log().find("polkit could not be asked about org.vmlease.release-lease"), std::string::npos)
        << h1->agent->log();
    EXPECT_EQ(h1->client->ListLeases().size(), 1u);

    auto machine = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(h1->bus_address), "org.vmlease", path);
    machine->callMethod("Release").onInterface("org.vmlease.Machine");
    EXPECT_TRUE(h1->client->ListLeases().empty());
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"db-rel", kDbDisk}, 10s));
    sdbus::Variant disks;
    machine->callMethod("Get").onInterface("org.freedesktop.DBus.Properties")
        .withArguments("org.vmlease.Machine", "Disks").storeResultsTo(disks);
    auto list = disks.get<std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>>>();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].get<2>(), "released");
    EXPECT_TRUE(vm.running());
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("InterfacesRemoved", {path}, 10s));
}

TEST_F(Machined, ALeaseTheVmsOwnSanlockClientHoldsIsNotAConflict) {
    // libvirt's sanlock plugin: the VM process itself registers with sanlock
    // and takes its disk's lease (not persistent) before it runs.
    std::string resource = lease_name(kDbDisk);
    std::map<std::string, std::string> env{{"SANLOCK_RUN_DIR", h1->sanlock.run_dir()}};
    std::string probe = required_env("SANLOCK_PROBE");
    run({probe, "-d", lease_dir, "-i", "1", "-t", "1", "lease", resource}, env);  // exists already if another test made it
    Child vm({probe, "-d", lease_dir, "-i", "1", "-t", "1", "-P", "acquire", resource, "hold", "600"}, env,
             root->path() + "/libvirt-vm.log");
    ASSERT_TRUE(eventually([&] {
        std::string status;
        run({required_env("SANLOCK"), "client", "status"}, env, &status);
        return status.find(resource + ":" + lease_dir + "/" + resource + ":0:") != std::string::npos &&
               status.find(" p " + std::to_string(vm.pid())) != std::string::npos;
    }, 10s)) << read_file(root->path() + "/libvirt-vm.log");

    h1->machined->create_machine("db-lv", vm.pid());
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"db-lv", kDbDisk}, 10s)) << h1->agent->log();
    // Protected: its one disk's outcome is in, and it is the lease, not a conflict.
    EXPECT_TRUE(eventually([&] { return listed_protected(*h1, "db-lv"); }, 5s));
    EXPECT_FALSE(h1->client->wait_for("LeaseConflict", {"db-lv"}, 0s)) << h1->agent->log();
    EXPECT_TRUE(vm.running());

    // Another machine wanting that disk on this host is a conflict, with this host as holder.
    Child other = vm_process(root->path(), "db-other");
    h1->machined->create_machine("db-other", other.pid());
    EXPECT_TRUE(h1->client->wait_for("LeaseConflict", {"db-other", kDbDisk, "1"}, 10s)) << h1->agent->log();
    EXPECT_NE(other.wait(15s), -1) << "the conflicting machine was not terminated";
    EXPECT_TRUE(vm.running());

    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"db-lv", kDbDisk}, 10s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->ListLeases().empty());
}

TEST_F(Machined, ARegisteredMachineHoldsItsDisksBeforeItStartsAndUntilItEnds) {
    const std::string disk = "/srv/vm/pre.img";
    std::map<std::string, sdbus::Variant> options{{"grace_seconds", sdbus::Variant(uint32_t(60))}};
    auto path = h1->client->RegisterMachine("vm-pre", {{disk, "exclusive"}, {"/srv/vm/cd.iso", "none"}}, options);
    EXPECT_EQ(path, "/org/vmlease/machine/vm_2dpre");
    auto leases = h1->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<0>(), disk);
    EXPECT_EQ(leases[0].get<2>(), "vm-pre");
    EXPECT_EQ(leases[0].get<4>(), "held");
    auto state = [&] {
        return h1->client->GetManagedObjects().at(path).at("org.vmlease.Machine").at("State").get<std::string>();
    };
    EXPECT_EQ(state(), "reserved");

    Child vm = vm_process(root->path(), "vm-pre");
    ASSERT_EQ(h1->machined->create_machine("vm-pre", vm.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(eventually([&] { return state() == "running"; }, 10s)) << state();
    EXPECT_EQ(h1->client->ListLeases().size(), 1u);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-pre", disk}, 10s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->ListLeases().empty());
}

TEST_F(Machined, AReservationWhoseMachineNeverAppearsExpires) {
    const std::string disk = "/srv/vm/never.img";
    auto start = std::chrono::steady_clock::now();
    h1->client->RegisterMachine("vm-never", {{disk, "exclusive"}}, {{"grace_seconds", sdbus::Variant(uint32_t(2))}});
    auto released = h1->client->wait_event("LeaseReleased", {"vm-never", disk}, 15s);
    ASSERT_TRUE(released) << h1->agent->log();
    auto after = std::chrono::duration_cast<std::chrono::milliseconds>(released->at - start).count();
    std::cout << "reservation released after " << after << " ms (grace 2 s)" << std::endl;
    EXPECT_GE(after, 1900);
    EXPECT_TRUE(h1->client->ListMachines().empty());
}

TEST_F(Machined, RegisterMachineIsAllOrNothingAndChecksItsArguments) {
    const std::string held = "/srv/vm/held.img", free_disk = "/srv/vm/free.img";
    h1->client->AcquireDisk("someone", held, "exclusive", {});
    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {{free_disk, "exclusive"}, {held, "exclusive"}}, {}); },
                       &message),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(message.find("someone"), std::string::npos) << message;
    auto leases = h1->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);  // free.img was given back
    EXPECT_EQ(leases[0].get<2>(), "someone");
    EXPECT_TRUE(h1->client->ListMachines().empty());

    const std::string invalid = "org.freedesktop.DBus.Error.InvalidArgs";
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {{free_disk, "exclusive"}, {free_disk, "shared"}}, {}); }),
              invalid);
    // Two names of one disk (a symlink and its target) are that disk listed twice.
    const std::string target = image("two-names.img"), link = *root / "link-to-two-names.img";
    std::filesystem::create_symlink(target, link);
    std::string twice;
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {{target, "exclusive"}, {link, "exclusive"}}, {}); },
                       &twice),
              invalid);
    EXPECT_NE(twice.find("are the same disk"), std::string::npos) << twice;
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {{free_disk, "rw"}}, {}); }), invalid);
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {{"relative.img", "exclusive"}}, {}); }), invalid);
    EXPECT_EQ(error_of([&] {
                  h1->client->RegisterMachine("vm-x", {{free_disk, "exclusive"}},
                                              {{"grace_seconds", sdbus::Variant(std::string("soon"))}});
              }),
              invalid);
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", {}, {{"bogus", sdbus::Variant(true)}}); }), invalid);
    std::vector<sdbus::Struct<std::string, std::string>> too_many;
    for (int i = 0; i < 300; i++)
        too_many.emplace_back("/srv/vm/many" + std::to_string(i) + ".img", "exclusive");
    EXPECT_EQ(error_of([&] { h1->client->RegisterMachine("vm-x", too_many, {}); }),
              "org.freedesktop.DBus.Error.LimitsExceeded");
    EXPECT_EQ(h1->client->ListLeases().size(), 1u);
    h1->client->ReleaseDisk("someone", held);
}

// --- two hosts, conflicts ------------------------------------------------------------

// systemd-machined leaves the bus (restarted on an upgrade, or not there yet
// when vmleased starts) and comes back: nothing is released meanwhile, and
// once it is on the bus its machines are listed again, those started since
// included (README "Machines").
TEST_F(Machined, MachinedLeavingAndComingBackIsPickedUp) {
    const std::string before = image("before.img"), after = image("after.img");
    Child vm1 = vm_process(root->path(), "back-1", before);
    ASSERT_EQ(h1->machined->create_machine("back-1", vm1.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"back-1", before}, 10s)) << h1->agent->log();

    const pid_t machined = h1->machined->machined_pid();
    ASSERT_GT(machined, 0);
    ASSERT_EQ(kill(machined, SIGTERM), 0);
    ASSERT_TRUE(eventually([&] {
        return h1->agent->log().find("systemd-machined left the bus") != std::string::npos;
    }, 15s)) << h1->agent->log();
    EXPECT_EQ(leases_of(*h1), (Leases{{before, "back-1", "held"}}));

    // A machine registered now starts machined again (bus activation).
    Child vm2 = vm_process(root->path(), "back-2", after);
    ASSERT_EQ(h1->machined->create_machine("back-2", vm2.pid()).rfind("o ", 0), 0u);
    EXPECT_NE(h1->machined->machined_pid(), machined);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"back-2", after}, 15s)) << h1->agent->log();
    // The new listing is in: a machine missing from it is named in that line
    // ("ended meanwhile") and released from there, LeaseReleased within 2 s.
    const std::string back = "systemd-machined is on the bus; listing its machines";
    std::string listed;
    ASSERT_TRUE(eventually([&] {
        std::string log = h1->agent->log();
        size_t at = log.find(back);
        at = at == std::string::npos ? at : log.find("systemd-machined listed ", at);
        if (at != std::string::npos)
            listed = log.substr(at, log.find('\n', at) - at);
        return at != std::string::npos;
    }, 15s)) << h1->agent->log();
    EXPECT_EQ(listed.find("back-1"), std::string::npos) << listed;
    EXPECT_FALSE(h1->client->wait_for("LeaseReleased", {"back-1"}, 2s)) << "released while machined was away";
    EXPECT_EQ(leases_of(*h1), (Leases{{before, "back-1", "held"}, {after, "back-2", "held"}}));

    vm1.signal(SIGKILL);
    vm2.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"back-1", before}, 15s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"back-2", after}, 15s)) << h1->agent->log();
}

class MachinedTwoHosts : public HostsSuite<MachinedTwoHosts> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-m2");
        std::filesystem::create_directories(images_dir(*root));
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = config_for(*root);
        start_hosts({o, o});
    }
};

TEST_F(MachinedTwoHosts, AMachineWhoseDiskIsHeldElsewhereIsTerminatedOrWarnedAbout) {
    Child vm1 = vm_process(root->path(), "db-a");
    h1->machined->create_machine("db-a", vm1.pid());
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"db-a", kDbDisk}, 10s)) << h1->agent->log();

    // on_conflict: terminate (fail closed)
    Child vm2 = vm_process(root->path(), "db-b");
    h2->machined->create_machine("db-b", vm2.pid());
    EXPECT_TRUE(h2->client->wait_for("LeaseConflict", {"db-b", kDbDisk, "1"}, 10s)) << h2->agent->log();
    EXPECT_NE(vm2.wait(15s), -1) << "the conflicting machine was not terminated";
    EXPECT_TRUE(h2->client->ListLeases().empty());
    auto owners = std::get<2>(h2->client->InspectDisk(kDbDisk));
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].get<0>(), 1u);

    // on_conflict: warn — the machine keeps running, the signal still fires
    AgentConfig warn = h2->config;
    warn.extra_yaml = config_for(*root, "warn");
    write_file(h2->agent->config_path(), config_yaml(warn));
    h2->client->Reload();
    Child vm3 = vm_process(root->path(), "db-c");
    h2->machined->create_machine("db-c", vm3.pid());
    EXPECT_TRUE(h2->client->wait_for("LeaseConflict", {"db-c", kDbDisk, "1"}, 10s)) << h2->agent->log();
    // The decision is logged with the conflict; a stop would be on its way by now.
    EXPECT_NE(h2->agent->log().find("of machine db-c is held by host 1; on_conflict=warn leaves the machine running"),
              std::string::npos)
        << h2->agent->log();
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(vm3.running()) << "on_conflict=warn stopped the machine";
    auto machines = h2->client->ListMachines();
    ASSERT_EQ(machines.size(), 1u);
    EXPECT_EQ(machines[0].get<0>(), "db-c");
    EXPECT_EQ(machines[0].get<3>(), 0u);

    vm3.signal(SIGKILL);
    vm1.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"db-a", kDbDisk}, 10s));
}

// --- start-up with machines already running ------------------------------------------

TEST(MachinedStartup, MachinesRunningBeforeTheAgentStartsAreAdopted) {
    become_subreaper();
    TempDir root("vml-ms");
    std::string lease_dir = root / "leases";
    std::filesystem::create_directories(lease_dir);
    std::filesystem::create_directories(images_dir(root));
    HostOptions o;
    o.with_machined = true;
    o.start_agent = false;
    o.extra_yaml = config_for(root);
    Host h(root.path(), lease_dir, 1, o);
    Child vm = vm_process(root.path(), "db-early");
    ASSERT_EQ(h.machined->create_machine("db-early", vm.pid()).rfind("o ", 0), 0u);

    h.start_agent();
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined")) << h.agent->log();
    // Taken once the lockspace is joined (it failed for lack of it before).
    ASSERT_TRUE(eventually(
        [&] {
            auto l = h.client->ListLeases();
            return l.size() == 1 && l[0].get<4>() == "held";
        },
        20s))
        << h.agent->log();
    auto leases = h.client->ListLeases();
    EXPECT_EQ(leases[0].get<0>(), kDbDisk);
    EXPECT_EQ(leases[0].get<2>(), "db-early");
    EXPECT_EQ(leases[0].get<4>(), "held");
    vm.signal(SIGKILL);
    EXPECT_TRUE(eventually([&] { return h.client->ListLeases().empty(); }, 10s)) << h.agent->log();
}

}  // namespace
