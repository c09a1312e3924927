// Disk identity and block device events with an emulated udev (umockdev):
// disks carry ID_PATH and /dev/disk/by-path links; the real vmleased runs
// inside the testbed with a udev database, next to the real
// systemd-machined and a real sanlock daemon.
#include "host.hpp"
#include "udev_testbed.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

using namespace vmtest;

namespace {

// What the testbed names a disk's by-path link (tests/support/umockdev_probe.py).
std::string by_path_of(const std::string &name) {
    return "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:" + std::to_string(name.back() - 'a') + ":0";
}
// The identity udev's by-id rules give a SCSI disk whose serial is VMLEASE_<name>
// (README, "Disk identity": the serial, for want of a WWN).
std::string identity_of(const std::string &name) { return "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_VMLEASE_" + name; }


class Udev : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        become_subreaper();
        root = std::make_unique<TempDir>("vml-udev");
        lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
        testbed = std::make_unique<UdevTestbed>(*root / "testbed");
        for (const char *name : {"sdb", "sdc"})
            disks[name] = testbed->add(name);
        disks["sdd"] = testbed->add("sdd", false);  // no vmlease tag: no events, still canonicalised

        HostOptions o;
        o.with_machined = true;
        o.agent_wrapper = testbed->agent_wrapper();
        o.agent_env = testbed->agent_env();
        o.agent_env["LD_PRELOAD"] = required_env("DROP_UEVENT_SHIM") + " " + o.agent_env["LD_PRELOAD"];
        o.agent_env["VMLEASE_TEST_DROP_UEVENTS"] = drop_trigger();
        o.extra_yaml = "machines:\n"
                       "  - match: \"late-*\"\n"
                       "    disks:\n"
                       "      - {path: " + by_path_of("sde") + ", mode: exclusive}\n";
        h = std::make_unique<Host>(root->path(), lease_dir, 1, o);
        ASSERT_TRUE(h->client->wait_property("LockspaceState", "joined")) << h->agent->log();
        testbed->wait_for_listeners(1);
    }
    static void TearDownTestSuite() {
        h.reset();
        testbed.reset();
        root.reset();
    }
    void SetUp() override { h->client->clear_events(); }
    void TearDown() override {
        if (h)
            h->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << h->agent->log() << std::endl;
    }
    static std::string drop_trigger() { return *root / "drop-next-uevent"; }
    static size_t count_of(const std::string &name) {
        auto events = h->client->events();
        return std::count_if(events.begin(), events.end(), [&](const Event &e) { return e.name == name; });
    }

    static inline std::unique_ptr<TempDir> root;
    static inline std::string lease_dir;
    static inline std::unique_ptr<UdevTestbed> testbed;
    static inline std::map<std::string, EmulatedDisk> disks;
    static inline std::unique_ptr<Host> h;
};

// DeviceAdded/DeviceRemoved name a device by its by-path link, the first in
// sorted order when it has several (a disk reached through two HBAs), and by
// its node when it has none (org.vmlease.5 "DeviceAdded").
TEST_F(Udev, DeviceSignalsNameTheFirstByPathLinkOrElseTheNode) {
    const std::string second = "/dev/disk/by-path/pci-0000:00:0f.0-sas-0x5000c500a1b2c3d4-lun-0";
    EmulatedDisk two = testbed->add("sdh", true, "path2=" + second.substr(std::strlen("/dev/disk/by-path/")));
    ASSERT_LT(second, two.by_path);  // the second link sorts first
    EXPECT_TRUE(h->client->wait_for("DeviceAdded", {second}, 10s)) << h->agent->log();
    testbed->remove("sdh");
    EXPECT_TRUE(h->client->wait_for("DeviceRemoved", {second}, 10s)) << h->agent->log();

    EmulatedDisk none = testbed->add("sdi", true, "path=-");
    ASSERT_EQ(none.by_path, "-");
    EXPECT_TRUE(h->client->wait_for("DeviceAdded", {"/dev/sdi"}, 10s)) << h->agent->log();
    testbed->remove("sdi");
    EXPECT_TRUE(h->client->wait_for("DeviceRemoved", {"/dev/sdi"}, 10s)) << h->agent->log();
    for (const auto &e : h->client->events()) {
        if (e.name == "DeviceAdded" || e.name == "DeviceRemoved") {
            EXPECT_NE(e.args.at(0), two.by_path) << "named by a by-path link that does not sort first";
        }
    }
}

TEST_F(Udev, EveryNameOfABlockDeviceLeadsToItsIdentityLease) {
    const std::string identity = identity_of("sdb");
    const std::string resource = lease_name(identity);
    std::cout << "identity of /dev/sdb and " << disks["sdb"].by_path << ": " << identity << " (lease " << resource
              << ")" << std::endl;

    auto lease = h->client->AcquireDisk("vm-c", "/dev/sdb", "exclusive", {});
    EXPECT_EQ(std::string(lease), "/org/vmlease/lease/" + resource);
    EXPECT_TRUE(h->client->wait_for("LeaseAcquired", {"vm-c", identity}, 10s)) << h->agent->log();
    // A kernel name is no alias: /dev/sdb may be another disk on another host.
    EXPECT_TRUE(h->client->lease_aliases(lease).empty());
    EXPECT_FALSE(std::filesystem::exists(lease_dir + "/" + lease_name("/dev/sdb")));
    // The by-id link, the by-path link and a roundabout spelling are the same disk.
    for (const std::string &name : {disks["sdb"].by_id, disks["sdb"].by_path, std::string("/dev/./disk/../sdb")})
        EXPECT_EQ(std::string(h->client->AcquireDisk("vm-c", name, "exclusive", {})), std::string(lease)) << name;
    auto leases = h->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<0>(), identity);
    EXPECT_EQ(leases[0].get<1>(), resource);
    EXPECT_TRUE(std::filesystem::exists(lease_dir + "/" + resource));

    auto inspected = h->client->InspectDisk(disks["sdb"].by_path);
    EXPECT_EQ(std::get<0>(inspected), resource);

    // A disk without the vmlease tag is named the same way.
    EXPECT_EQ(std::string(h->client->AcquireDisk("vm-d", "/dev/sdd", "exclusive", {})),
              "/org/vmlease/lease/" + lease_name(identity_of("sdd")));
    h->client->ReleaseDisk("vm-d", disks["sdd"].by_path);

    h->client->ReleaseDisk("vm-c", disks["sdb"].by_path);
    EXPECT_TRUE(h->client->wait_for("LeaseReleased", {"vm-c", identity}, 10s));
    EXPECT_TRUE(h->client->ListLeases().empty());
}

TEST_F(Udev, ADevicePathWithNoDeviceIsRefusedWithAClearError) {
    std::string message;
    EXPECT_EQ(error_of([&] { h->client->AcquireDisk("vm-c", "/dev/sdz", "exclusive", {}); }, &message),
              "org.vmlease.Error.InvalidDisk");
    EXPECT_NE(message.find("/dev/sdz"), std::string::npos) << message;
    EXPECT_NE(message.find("no such device"), std::string::npos) << message;
    EXPECT_TRUE(h->client->ListLeases().empty());
}

TEST_F(Udev, DevicesPresentAtStartAndAddedLaterAreSignalled) {
    // sdc was there before the agent started: its removal is only noticed
    // because the start-up enumeration knew it.
    testbed->remove("sdc");
    EXPECT_TRUE(h->client->wait_for("DeviceRemoved", {disks["sdc"].by_path}, 10s)) << h->agent->log();
    disks["sdc"] = testbed->add("sdc");
    EXPECT_TRUE(h->client->wait_for("DeviceAdded", {disks["sdc"].by_path}, 10s));
    // Untagged devices are filtered out by the monitor; the tagged one after it arrives.
    testbed->add("sdf", false);
    testbed->add("sdg");
    ASSERT_TRUE(h->client->wait_for("DeviceAdded", {by_path_of("sdg")}, 10s));
    // Events are handled and signalled in order: sdf's would have come first.
    EXPECT_FALSE(h->client->wait_for("DeviceAdded", {by_path_of("sdf")}, 0s));
    testbed->remove("sdf");
    testbed->remove("sdg");
    EXPECT_TRUE(h->client->wait_for("DeviceRemoved", {by_path_of("sdg")}, 10s));
}

TEST_F(Udev, ALostEventIsMadeUpForByEnumeratingAgain) {
    // The next datagram the monitor reads is consumed and reported as ENOBUFS.
    write_file(drop_trigger(), "");
    testbed->remove("sdc");
    ASSERT_TRUE(h->client->wait_for("DeviceRemoved", {disks["sdc"].by_path}, 10s)) << h->agent->log();
    EXPECT_FALSE(std::filesystem::exists(drop_trigger())) << "the event was not dropped";
    EXPECT_NE(h->agent->log().find("udev events were lost"), std::string::npos);
    disks["sdc"] = testbed->add("sdc");
    EXPECT_TRUE(h->client->wait_for("DeviceAdded", {disks["sdc"].by_path}, 10s));
}

TEST_F(Udev, ALunThatAppearsAfterItsMachineStartedGetsItsLease) {
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/late-1.log");
    ASSERT_EQ(h->machined->create_machine("late-1", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h->client->wait_for("InterfacesAdded", {"/org/vmlease/machine/late_2d1"}, 10s)) << h->agent->log();
    auto machine_disks = [] {
        auto managed = h->client->GetManagedObjects();
        return managed.at(sdbus::ObjectPath("/org/vmlease/machine/late_2d1"))
            .at("org.vmlease.Machine")
            .at("Disks")
            .get<std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>>>();
    };
    auto waiting = machine_disks();
    ASSERT_EQ(waiting.size(), 1u);
    EXPECT_EQ(waiting[0].get<0>(), by_path_of("sde"));
    EXPECT_EQ(waiting[0].get<2>(), "waiting-for-device");
    EXPECT_TRUE(h->client->ListLeases().empty());

    disks["sde"] = testbed->add("sde");
    ASSERT_TRUE(h->client->wait_for("LeaseAcquired", {"late-1", identity_of("sde")}, 10s)) << h->agent->log();
    EXPECT_EQ(machine_disks()[0].get<2>(), "held");

    // The device goes away; the lease lives on the lease directory and stays.
    testbed->remove("sde");
    ASSERT_TRUE(h->client->wait_for("DeviceRemoved", {by_path_of("sde")}, 10s));
    auto leases = h->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "late-1");
    EXPECT_EQ(leases[0].get<4>(), "held");
    EXPECT_NE(h->agent->log().find("went away while leased by late-1; the lease stays held"), std::string::npos);

    h->machined->call("TerminateMachine", {"s", "late-1"});
    EXPECT_TRUE(h->client->wait_for("LeaseReleased", {"late-1", identity_of("sde")}, 10s));
}

TEST_F(Udev, AnEventStormDoesNotKeepDbusCallsWaiting) {
    constexpr unsigned kEvents = 5000;
    using Clock = std::chrono::steady_clock;
    std::atomic<bool> stop{false};
    struct Call {
        Clock::time_point sent, answered;
    };
    std::vector<Call> calls;
    // A second client calls the agent in a loop while the storm goes on.
    std::thread caller([&] {
        ManagerClient client(h->bus_address);
        while (!stop) {
            Call c{Clock::now(), {}};
            client.ListLeases();
            (void)client.LockspaceState();
            c.answered = Clock::now();
            calls.push_back(c);
        }
    });
    auto start = Clock::now();
    double send_seconds = testbed->burst(kEvents, "sdb", "sdc");
    bool all = eventually([&] { return count_of("DeviceAdded") + count_of("DeviceRemoved") >= kEvents; }, 120s);
    stop = true;
    caller.join();
    ASSERT_TRUE(all) << count_of("DeviceAdded") << " added, " << count_of("DeviceRemoved") << " removed";
    EXPECT_EQ(count_of("DeviceAdded"), kEvents / 2);
    EXPECT_EQ(count_of("DeviceRemoved"), kEvents / 2);

    // The last storm signal arrived at `last`; calls answered before it were
    // answered while events were still being handled.
    auto events = h->client->events();
    auto last = events.back().at;
    size_t during = 0;
    auto worst = Clock::duration::zero();
    for (const auto &c : calls) {
        if (c.sent >= start && c.answered <= last)
            during++;
        if (c.sent >= start && c.sent <= last)
            worst = std::max(worst, c.answered - c.sent);
    }
    double seconds = std::chrono::duration<double>(last - start).count();
    std::cout << kEvents << " udev events: sent in " << send_seconds << " s, all signalled after " << seconds
              << " s (" << static_cast<int>(kEvents / seconds) << " events/s); " << during
              << " D-Bus calls answered during the storm, worst "
              << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count() << " ms" << std::endl;
    // Calls are answered all through the storm: at least 3 of its 4 quarters
    // saw answers. (umockdev's sender is slower than the agent, so no backlog
    // builds up: this does not show that a backlog is read in batches below
    // D-Bus priority, only that the bus is served while events come in.)
    std::set<int> quarters;
    for (const auto &c : calls)
        if (c.answered >= start && c.answered <= last)
            quarters.insert(static_cast<int>(4 * std::chrono::duration<double>(c.answered - start).count() / seconds));
    EXPECT_GE(during, 8u) << "few D-Bus calls were answered while the storm was handled";
    EXPECT_GE(quarters.size(), 3u) << "answers came in " << quarters.size() << " quarter(s) of the storm only";
    // Both disks are present again and the agent still knows them.
    testbed->remove("sdb");
    EXPECT_TRUE(h->client->wait_for("DeviceRemoved", {disks["sdb"].by_path}, 10s));
    disks["sdb"] = testbed->add("sdb");
    EXPECT_TRUE(h->agent->child().running());
}

}  // namespace
