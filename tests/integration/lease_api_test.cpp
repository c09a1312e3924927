// org.vmlease.Manager on one host, end to end: a real dbus-daemon, a real
// sanlock daemon and the real vmleased binary.
#include "host.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <thread>

using namespace vmtest;

namespace {

const std::string kDisk = "/var/lib/libvirt/images/demo.img";
const std::string kResource = "bfa0240911bc17753e0b473688822159";
const std::map<std::string, sdbus::Variant> kNoOptions;

class LeaseApi : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        become_subreaper();
        root = std::make_unique<TempDir>("vmlease-api");
        lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
        host = std::make_unique<Host>(root->path(), lease_dir, 1);
        state_right_after_start = host->client->LockspaceState();
        // The API is usable while joining; leases need the lockspace joined.
        if (state_right_after_start == "joining")
            unavailable_error = error_of([] { host->client->AcquireDisk("early", kDisk, "exclusive", kNoOptions); });
        ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();
    }
    static void TearDownTestSuite() {
        host.reset();
        root.reset();
    }
    void SetUp() override { host->client->clear_events(); }
    void TearDown() override {
        // Leave no lease behind for the next test.
        for (const auto &l : host->client->ListLeases())
            host->client->ReleaseDisk(l.get<2>(), l.get<0>());
        if (host)
            host->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << host->agent->log() << std::endl;
    }
    static ManagerClient &client() { return *host->client; }

    static inline std::unique_ptr<TempDir> root;
    static inline std::string lease_dir;
    static inline std::unique_ptr<Host> host;
    static inline std::string state_right_after_start;
    static inline std::string unavailable_error;
};

TEST_F(LeaseApi, MethodsNeedingTheLockspaceFailUntilItIsJoined) {
    ASSERT_EQ(state_right_after_start, "joining");
    EXPECT_EQ(unavailable_error, "org.vmlease.Error.LockspaceUnavailable");
    EXPECT_TRUE(std::filesystem::exists(lease_dir + "/__LIBVIRT__DISKS__"));
    EXPECT_EQ(std::filesystem::file_size(lease_dir + "/__LIBVIRT__DISKS__"), 1u << 20);
}

TEST_F(LeaseApi, PropertiesDescribeThisHost) {
    EXPECT_EQ(client().HostId(), 1u);
    EXPECT_EQ(client().Lockspace(), "__LIBVIRT__DISKS__");
    EXPECT_EQ(client().LeaseDirectory(), lease_dir);
    EXPECT_EQ(client().LockspaceState(), "joined");
    EXPECT_FALSE(client().Version().empty());
    EXPECT_EQ(client().LeaseCount(), 0u);
    EXPECT_EQ(client().MachineCount(), 0u);
}

TEST_F(LeaseApi, AcquireListInspectRelease) {
    sdbus::ObjectPath lease = client().AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(lease, "/org/vmlease/lease/" + kResource);
    EXPECT_TRUE(client().wait_for("LeaseAcquired", {"vm1", kDisk, lease}));
    EXPECT_TRUE(client().wait_for("InterfacesAdded", {lease, "org.vmlease.Lease"}));
    EXPECT_TRUE(client().wait_for("PropertiesChanged", {"org.vmlease.Manager", "LeaseCount"}));
    EXPECT_EQ(client().LeaseCount(), 1u);
    auto managed = client().GetManagedObjects();
    ASSERT_EQ(managed.count(lease), 1u);
    EXPECT_EQ(managed.at(lease).count("org.vmlease.Lease"), 1u);

    // The lease file exists, 1 MiB, and sanlock itself says this host holds the resource.
    EXPECT_EQ(std::filesystem::file_size(lease_dir + "/" + kResource), 1u << 20);
    std::string status;
    ASSERT_EQ(run({required_env("SANLOCK"), "client", "status"}, host->sanlock.env(), &status), 0);
    EXPECT_NE(status.find("r __LIBVIRT__DISKS__:" + kResource), std::string::npos) << status;

    auto leases = client().ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<0>(), kDisk);
    EXPECT_EQ(leases[0].get<1>(), kResource);
    EXPECT_EQ(leases[0].get<2>(), "vm1");
    EXPECT_EQ(leases[0].get<3>(), "exclusive");
    EXPECT_EQ(leases[0].get<4>(), "held");
    EXPECT_EQ(leases[0].get<5>(), lease);

    // The per-lease object carries the same facts.
    auto lease_proxy = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(host->bus_address),
                                          "org.vmlease", lease);
    sdbus::Variant owner;
    lease_proxy->callMethod("Get").onInterface("org.freedesktop.DBus.Properties")
        .withArguments("org.vmlease.Lease", "Owner").storeResultsTo(owner);
    EXPECT_EQ(owner.get<std::string>(), "vm1");

    auto [resource, file, owners, version] = client().InspectDisk(kDisk);
    EXPECT_EQ(resource, kResource);
    EXPECT_EQ(version, 1u) << "a new lease file, taken once";
    EXPECT_EQ(file, lease_dir + "/" + kResource);
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].get<0>(), 1u);
    EXPECT_EQ(owners[0].get<2>(), "live");
    EXPECT_EQ(owners[0].get<3>(), "this host");

    client().ReleaseDisk("vm1", kDisk);
    EXPECT_TRUE(client().wait_for("LeaseReleased", {"vm1", kDisk, lease}));
    EXPECT_TRUE(client().wait_for("InterfacesRemoved", {lease, "org.vmlease.Lease"}));
    EXPECT_TRUE(client().ListLeases().empty());
    EXPECT_EQ(std::get<2>(client().InspectDisk(kDisk)).size(), 0u);
    ASSERT_EQ(run({required_env("SANLOCK"), "client", "status"}, host->sanlock.env(), &status), 0);
    EXPECT_EQ(status.find(kResource), std::string::npos) << status;
}

TEST_F(LeaseApi, SecondOwnerOnTheSameHostGetsLeaseHeld) {
    client().AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    std::string message;
    EXPECT_EQ(error_of([&] { client().AcquireDisk("vm2", kDisk, "exclusive", kNoOptions); }, &message),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(message.find("vm1"), std::string::npos) << message;
    EXPECT_NE(message.find("host id 1"), std::string::npos) << message;
    EXPECT_EQ(error_of([&] { client().AcquireDisk("vm2", kDisk, "shared", kNoOptions); }), "org.vmlease.Error.LeaseHeld");
    // vm1 still holds it
    auto leases = client().ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "vm1");
}

TEST_F(LeaseApi, SameDiskSpelledDifferentlyIsTheSameLease) {
    auto a = client().AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    auto b = client().AcquireDisk("vm1", "/var/lib/libvirt//images/./demo.img", "exclusive", kNoOptions);
    EXPECT_EQ(a, b);
    EXPECT_EQ(client().ListLeases().size(), 1u);
}

TEST_F(LeaseApi, SharedLeaseHasSeveralOwners) {
    const std::string disk = "/srv/shared/cluster.img";
    client().AcquireDisk("vm1", disk, "shared", kNoOptions);
    client().AcquireDisk("vm2", disk, "shared", kNoOptions);
    EXPECT_EQ(client().ListLeases().size(), 2u);
    EXPECT_EQ(error_of([&] { client().AcquireDisk("vm3", disk, "exclusive", kNoOptions); }),
              "org.vmlease.Error.LeaseHeld");
    client().ReleaseDisk("vm1", disk);
    EXPECT_EQ(client().ListLeases().size(), 1u);
    EXPECT_EQ(client().ListLeases()[0].get<2>(), "vm2");
}

TEST_F(LeaseApi, ReleaseMachineReleasesEveryLeaseOfTheOwner) {
    client().AcquireDisk("vm1", "/srv/a.img", "exclusive", kNoOptions);
    client().AcquireDisk("vm1", "/srv/b.img", "exclusive", kNoOptions);
    client().AcquireDisk("vm2", "/srv/c.img", "exclusive", kNoOptions);
    client().ReleaseMachine("vm1");
    auto leases = client().ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "vm2");
    EXPECT_EQ(error_of([&] { client().ReleaseMachine("vm1"); }), "org.vmlease.Error.NoSuchOwner");
}

TEST_F(LeaseApi, ReleasingWhatIsNotHeldIsNoSuchLease) {
    EXPECT_EQ(error_of([&] { client().ReleaseDisk("vm1", "/srv/never.img"); }), "org.vmlease.Error.NoSuchLease");
    client().AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(error_of([&] { client().ReleaseDisk("vm2", kDisk); }), "org.vmlease.Error.NoSuchLease");
    EXPECT_EQ(client().ListLeases().size(), 1u);
}

TEST_F(LeaseApi, InspectingADiskWithoutLeaseFileIsNoSuchLease) {
    EXPECT_EQ(error_of([&] { client().InspectDisk("/srv/no-such-lease.img"); }), "org.vmlease.Error.NoSuchLease");
}

TEST_F(LeaseApi, BadInputGetsAClearErrorAndChangesNothing) {
    client().AcquireDisk("keeper", "/srv/keep.img", "exclusive", kNoOptions);
    struct Case {
        const char *what;
        std::function<void()> call;
        std::string expect_in_message;
    };
    std::map<std::string, sdbus::Variant> unknown_option{{"bogus", sdbus::Variant(true)}};
    std::vector<Case> cases = {
        {"empty disk", [&] { client().AcquireDisk("vm1", "", "exclusive", kNoOptions); }, "empty"},
        {"relative path", [&] { client().AcquireDisk("vm1", "images/demo.img", "exclusive", kNoOptions); }, "not absolute"},
        {"10,000-character path",
         [&] { client().AcquireDisk("vm1", "/" + std::string(9999, 'a'), "exclusive", kNoOptions); }, "limit is 4095"},
        {"unknown mode", [&] { client().AcquireDisk("vm1", kDisk, "rw", kNoOptions); }, "\"rw\""},
        {"mode none", [&] { client().AcquireDisk("vm1", kDisk, "none", kNoOptions); }, "\"none\""},
        {"unknown option key", [&] { client().AcquireDisk("vm1", kDisk, "exclusive", unknown_option); }, "\"bogus\""},
        {"empty owner", [&] { client().AcquireDisk("", kDisk, "exclusive", kNoOptions); }, "owner is empty"},
        {"owner with a slash", [&] { client().AcquireDisk("a/b", kDisk, "exclusive", kNoOptions); }, "contains"},
        {"huge owner", [&] { client().AcquireDisk(std::string(10000, 'o'), kDisk, "exclusive", kNoOptions); }, "limit is 255"},
        {"release relative", [&] { client().ReleaseDisk("keeper", "srv/keep.img"); }, "not absolute"},
        {"inspect empty", [&] { client().InspectDisk(""); }, "empty"},
    };
    for (const auto &c : cases) {
        std::string message;
        EXPECT_EQ(error_of(c.call, &message), "org.freedesktop.DBus.Error.InvalidArgs") << c.what;
        EXPECT_NE(message.find(c.expect_in_message), std::string::npos) << c.what << ": " << message;
        EXPECT_LT(message.size(), 400u) << c.what << ": the error echoes the whole argument";
    }
    EXPECT_TRUE(host->agent->child().running());
    auto leases = client().ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "keeper");
}

TEST_F(LeaseApi, CleanupLeavesLeaseFilesYoungerThanAnHourAlone) {
    client().AcquireDisk("young", "/srv/young.img", "exclusive", {});
    client().ReleaseDisk("young", "/srv/young.img");
    EXPECT_TRUE(client().CleanupLeases(true).empty());
    EXPECT_TRUE(client().CleanupLeases(false).empty());
    EXPECT_TRUE(std::filesystem::exists(std::get<1>(client().InspectDisk("/srv/young.img"))));
    EXPECT_TRUE(client().ListMachines().empty());
}

TEST_F(LeaseApi, ReloadRejectsABadFileAndKeepsTheOldOne) {
    std::string good = read_file(host->agent->config_path());
    write_file(host->agent->config_path(), good + "bogus_key: 1\n");
    std::string message;
    EXPECT_EQ(error_of([&] { client().Reload(); }, &message), "org.vmlease.Error.ConfigInvalid");
    EXPECT_NE(message.find("bogus_key"), std::string::npos) << message;
    EXPECT_NE(message.find(host->agent->config_path() + ":"), std::string::npos) << message;

    write_file(host->agent->config_path(), good + "on_conflict: warn\n");
    EXPECT_NO_THROW(client().Reload());

    std::string changed = good;
    changed.replace(changed.find("host_id: 1"), 10, "host_id: 9");
    write_file(host->agent->config_path(), changed);
    EXPECT_EQ(error_of([&] { client().Reload(); }, &message), "org.vmlease.Error.ConfigInvalid");
    EXPECT_NE(message.find("host_id"), std::string::npos) << message;
    EXPECT_EQ(client().HostId(), 1u);
    write_file(host->agent->config_path(), good);
}

TEST(VmleasedStartup, MalformedConfigurationIsRefusedWithFileLineAndColumn) {
    TempDir dir("vmlease-badconf");
    write_file(dir / "vmlease.yaml", "host_id: 1\nlease_dir: [unclosed\n");
    std::string out;
    int rc = run({required_env("VMLEASED"), "--config", dir / "vmlease.yaml"}, {}, &out, 10s);
    EXPECT_EQ(rc, 78) << out;
    EXPECT_NE(out.find(dir / "vmlease.yaml:"), std::string::npos) << out;
    EXPECT_EQ(sanitizer_report(out), "");

    write_file(dir / "vmlease.yaml", "host_id: 4000\n");
    rc = run({required_env("VMLEASED"), "--config", dir / "vmlease.yaml"}, {}, &out, 10s);
    EXPECT_EQ(rc, 78) << out;
    EXPECT_NE(out.find(dir / "vmlease.yaml:1:10:"), std::string::npos) << out;
    EXPECT_EQ(sanitizer_report(out), "");
}

TEST(VmleasedLockspace, UnjoinableLockspaceIsReportedAndRetried) {
    become_subreaper();
    TempDir root("vmlease-nojoin");
    std::string lease_dir = root / "not-mounted-yet";
    Host h(root.path(), lease_dir, 1);
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "failed", 20s)) << h.agent->log();
    EXPECT_NE(h.agent->log().find(lease_dir), std::string::npos) << h.agent->log();
    EXPECT_EQ(error_of([&] { h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions); }),
              "org.vmlease.Error.LockspaceUnavailable");
    EXPECT_TRUE(h.agent->child().running());

    // The storage shows up: the agent rejoins by itself.
    std::filesystem::create_directories(lease_dir);
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined", 60s)) << h.agent->log();
    EXPECT_TRUE(h.client->wait_for("PropertiesChanged", {"org.vmlease.Manager", "LockspaceState"}));
    EXPECT_NO_THROW(h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions));
}

// vmleased(8): SIGTERM and SIGINT stop it cleanly; leases stay held.
TEST(VmleasedShutdown, SigtermAndSigintStopCleanlyAndLeaveLeasesHeld) {
    for (int sig : {SIGTERM, SIGINT}) {
        SCOPED_TRACE(strsignal(sig));
        Site site("vmlease-stop");
        Host h(site.root.path(), site.lease_dir(), 1);
        ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined"));
        h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
        h.client.reset();
        int status = h.agent->stop(sig);
        ASSERT_TRUE(WIFEXITED(status)) << h.agent->log();
        EXPECT_EQ(WEXITSTATUS(status), 0) << h.agent->log();
        EXPECT_NE(h.agent->log().find(std::string("received ") + strsignal(sig)), std::string::npos) << h.agent->log();
        // PERSISTENT: the lease outlives the agent, as an orphan of this host.
        std::string out;
        ASSERT_EQ(run({required_env("SANLOCK"), "client", "status"}, h.sanlock.env(), &out), 0);
        EXPECT_NE(out.find(kResource), std::string::npos) << out;
        EXPECT_NE(out.find("ORPHAN"), std::string::npos) << out;
    }
}

TEST(VmleasedLockFailure, SanlocksSigtermIsALockFailureNotAStop) {
    // With SIGKILL restricted, sanlock asks the holder of leases in a removed
    // lockspace to let go by sending SIGTERM from its helper, every second.
    Site site("vmlease-sigterm");
    std::string lease_dir = site.lease_dir();
    Host h(site.root.path(), lease_dir, 1);
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined"));
    h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);

    // rem_lockspace waits for the leases to go; run it in the background.
    Child rem({required_env("SANLOCK"), "client", "rem_lockspace", "-s",
               "__LIBVIRT__DISKS__:1:" + lease_dir + "/__LIBVIRT__DISKS__:0"},
              h.sanlock.env(), site.root / "rem_lockspace.log");
    // vm1 is no machine: its lease is simply given back.
    ASSERT_TRUE(h.client->wait_for("LockFailure", {"vm1", "__LIBVIRT__DISKS__", "release"}, 20s)) << h.agent->log();
    EXPECT_TRUE(h.client->wait_for("LeaseReleased", {"vm1"}, 10s));
    EXPECT_NE(rem.wait(20s), -1) << "rem_lockspace still waits for the lease";
    EXPECT_TRUE(h.agent->child().running()) << "wait status " << h.agent->child().wait(0ms) << "\n" << h.agent->log();
    std::string log = h.agent->log();
    EXPECT_NE(log.find("signalled: lockspace __LIBVIRT__DISKS__ failed"), std::string::npos) << log;
    EXPECT_NE(log.find("lockspace __LIBVIRT__DISKS__ is failed"), std::string::npos) << log;
    EXPECT_TRUE(h.client->ListLeases().empty());
    // And it joins again by itself, and serves.
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined", 30s)) << h.agent->log();
    EXPECT_NO_THROW(h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions));
    rem.stop(1s);
}

}  // namespace
