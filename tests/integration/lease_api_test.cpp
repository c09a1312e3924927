// org.vmlease.Manager on one host, end to end: a real dbus-daemon, a real
// sanlock daemon and the real vmleased binary.
#include "faultfs.hpp"
#include "host.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
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
    EXPECT_TRUE(client().wait_changed("LeaseCount", "1"));
    EXPECT_EQ(client().LeaseCount(), 1u);
    auto managed = client().GetManagedObjects();
    ASSERT_EQ(managed.count(lease), 1u);
    EXPECT_EQ(managed.at(lease).count("org.vmlease.Lease"), 1u);

    // The lease file exists, 1 MiB, and sanlock itself says this host holds the resource.
    EXPECT_EQ(std::filesystem::file_size(lease_dir + "/" + kResource), 1u << 20);
    // It and the lockspace belong to the default lease_file_user and
    // lease_file_group: whom the sanlock daemon runs as, read from its socket
    // (root here: the test daemons run with -U root -G root, although this
    // host has a user "sanlock"), mode 0660 whatever vmleased's umask (022).
    struct stat sock {};
    ASSERT_EQ(stat((host->sanlock.run_dir() + "/sanlock.sock").c_str(), &sock), 0);
    std::cout << "sanlock runs as " << sock.st_uid << ":" << sock.st_gid << "\n";
    const uid_t uid = sock.st_uid;
    const gid_t gid = sock.st_gid;
    for (const std::string &file : {lease_dir + "/" + kResource, lease_dir + "/__LIBVIRT__DISKS__"}) {
        struct stat st {};
        ASSERT_EQ(stat(file.c_str(), &st), 0) << file;
        EXPECT_EQ(st.st_mode & 07777, 0660u) << file;
        EXPECT_EQ(st.st_uid, uid) << file;
        EXPECT_EQ(st.st_gid, gid) << file;
    }
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

// THREAT-MODEL, row "lockfailure socket, plan file": what the killpath helper
// reads and talks to, and the state file, reach only root: root's, with no
// group or other permission bits (the socket is bound under umask 0077, so
// 0700; the files are written 0600), whatever vmleased's umask (022 here).
TEST_F(LeaseApi, TheLockFailureSocketThePlanAndTheStateFileReachOnlyRoot) {
    const std::string runtime = host->dir + "/agent/runtime/";
    client().AcquireDisk("planned", "/srv/planned.img", "exclusive", kNoOptions);
    ASSERT_TRUE(eventually([&] { return std::filesystem::exists(runtime + "lockfailure-plan"); }, 10s));
    for (const char *name : {"lockfailure.sock", "lockfailure-plan", "leases"}) {
        struct stat st {};
        ASSERT_EQ(stat((runtime + name).c_str(), &st), 0) << name;
        EXPECT_EQ(st.st_mode & 0077, 0u) << name << ": mode " << std::oct << (st.st_mode & 07777);
        EXPECT_EQ(st.st_uid, 0u) << name;
    }
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

// What a reload changes is seen through cleanup_min_age: whether a dry-run
// cleanup would remove an unused lease file says which configuration is in
// force. A bad file, by Reload or by SIGHUP, changes nothing of it.
TEST_F(LeaseApi, ReloadAppliesAGoodFileAndABadOneKeepsTheOldOne) {
    const std::string path = host->agent->config_path();
    const std::string good = read_file(path);
    client().AcquireDisk("aged", "/srv/aged.img", "exclusive", kNoOptions);
    client().ReleaseDisk("aged", "/srv/aged.img");
    const std::string file = std::get<1>(client().InspectDisk("/srv/aged.img"));
    auto would_remove = [&] {
        auto files = client().CleanupLeases(true);
        return std::find(files.begin(), files.end(), file) != files.end();
    };
    ASSERT_FALSE(would_remove()) << "the default cleanup_min_age is an hour";

    // A good file is applied.
    write_file(path, good + "cleanup_min_age: 0\n");
    client().Reload();
    EXPECT_TRUE(would_remove()) << host->agent->log();

    // A bad one is rejected naming file, line and column; the one in force stays.
    const std::string in_force = read_file(path);
    const auto bad_line = std::count(in_force.begin(), in_force.end(), '\n') + 1;
    write_file(path, in_force + "bogus_key: 1\n");
    std::string message;
    EXPECT_EQ(error_of([&] { client().Reload(); }, &message), "org.vmlease.Error.ConfigInvalid");
    EXPECT_NE(message.find("bogus_key"), std::string::npos) << message;
    EXPECT_NE(message.find(path + ":" + std::to_string(bad_line) + ":1:"), std::string::npos) << message;
    EXPECT_TRUE(would_remove()) << "a rejected file changed the configuration in force";

    // SIGHUP: the same rejection, in the log; the configuration in force stays.
    write_file(path, in_force + "on_conflict: sometimes\n");
    const std::string rejected = "configuration rejected, the old one stays in force: " + path + ":" +
                                 std::to_string(bad_line) + ":";
    auto rejections = [&] {
        const std::string log = host->agent->log();
        size_t n = 0;
        for (size_t at = 0; (at = log.find(rejected, at)) != std::string::npos; at++)
            n++;
        return n;
    };
    const size_t before_sighup = rejections();  // the Reload above logged one
    host->agent->child().signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return rejections() == before_sighup + 1; }, 10s)) << host->agent->log();
    EXPECT_NE(host->agent->log().find("sometimes"), std::string::npos) << host->agent->log();
    EXPECT_TRUE(host->agent->child().running());
    EXPECT_TRUE(would_remove()) << "a file rejected on SIGHUP changed the configuration in force";

    // Keys sanlock was set up with cannot change while it runs: the whole file is rejected.
    for (const auto &[key, value] : std::vector<std::pair<std::string, std::string>>{
             {"host_id", "9"}, {"io_timeout", "3"}, {"lease_dir", "/srv/elsewhere"}}) {
        std::string changed = in_force;
        const auto at = changed.find(key + ": ");
        ASSERT_NE(at, std::string::npos) << key;
        changed.replace(at, changed.find('\n', at) - at, key + ": " + value);
        changed.replace(changed.find("cleanup_min_age: 0"), 18, "cleanup_min_age: 86400");
        write_file(path, changed);
        EXPECT_EQ(error_of([&] { client().Reload(); }, &message), "org.vmlease.Error.ConfigInvalid") << key;
        EXPECT_NE(message.find(key + " cannot change while vmleased runs; restart it to apply"), std::string::npos)
            << message;
        EXPECT_TRUE(would_remove()) << key << ": a rejected file changed the configuration in force";
    }
    EXPECT_EQ(client().HostId(), 1u);

    // The original file again: a day's minimum age.
    write_file(path, good);
    client().Reload();
    EXPECT_FALSE(would_remove());
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
    // vmleasectl(1): status exits 0 whenever vmleased answered, whatever the lockspace's state.
    std::string status;
    EXPECT_EQ(run({required_env("VMLEASECTL"), "status"}, {{"DBUS_SYSTEM_BUS_ADDRESS", h.bus_address}}, &status), 0)
        << status;
    EXPECT_NE(status.find("failed"), std::string::npos) << status;

    // The storage shows up: the agent rejoins by itself.
    h.client->clear_events();
    std::filesystem::create_directories(lease_dir);
    ASSERT_TRUE(h.client->wait_changed("LockspaceState", "joined", 60s)) << h.agent->log();
    h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(leases_of(h), (Leases{{kDisk, "vm1", "held"}}));
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

// vmleased(8) "WATCHDOG": under WatchdogSec= systemd passes WATCHDOG_USEC and
// the event loop sends WATCHDOG=1 well within it (sd-event's own keep-alive,
// so a loop that hangs stops sending and systemd restarts the service).
TEST(VmleasedWatchdog, TheEventLoopKeepsSystemdsWatchdogFed) {
    Site site("vmlease-wd");
    HostOptions o;
    o.agent_env = {{"WATCHDOG_USEC", "2000000"}};
    Host h(site.root.path(), site.lease_dir(), 1, o);
    // The harness stopped listening at READY=1; listen again where the agent notifies.
    const std::string path = h.dir + "/agent/notify.sock";
    unlink(path.c_str());
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0) << strerror(errno);
    std::vector<std::chrono::steady_clock::time_point> pings;
    const auto start = std::chrono::steady_clock::now(), end = start + 6s;
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{sock, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
        if (n > 0 && std::string(buf, n).find("WATCHDOG=1") != std::string::npos)
            pings.push_back(std::chrono::steady_clock::now());
    }
    close(sock);
    ASSERT_GE(pings.size(), 3u) << "WATCHDOG=1 sent " << pings.size() << " times in 6 s with WatchdogSec=2s";
    double worst = std::chrono::duration<double>(pings.front() - start).count();
    for (size_t i = 1; i < pings.size(); i++)
        worst = std::max(worst, std::chrono::duration<double>(pings[i] - pings[i - 1]).count());
    std::cout << pings.size() << " watchdog keep-alives in 6 s, longest gap " << worst << " s (WatchdogSec=2s)"
              << std::endl;
    EXPECT_LT(worst, 2.0) << "a keep-alive came later than WatchdogSec";
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
    h.client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(leases_of(h), (Leases{{kDisk, "vm1", "held"}}));
    rem.stop(1s);
}

// More acquires at once than sanlock has worker threads: the agent says so
// (Warnings, and once in the journal), with what to set. The worker count is
// sanlock's (-t, or max_worker_threads in sanlock.conf; 8 by default), as
// the agent read it at start. The next test restarts the agent, which
// clears the warning.
TEST_F(LeaseApi, AcquiresBeyondSanlocksWorkerThreadsAreReportedWithWhatToSet) {
    std::smatch m;
    const std::string start_log = host->agent->whole_log();
    ASSERT_TRUE(std::regex_search(start_log, m, std::regex(R"(sanlock has (\d+) worker threads)"))) << start_log;
    const unsigned workers = static_cast<unsigned>(std::stoul(m[1]));
    auto advice = [&] {
        for (const auto &w : client().Warnings())
            if (w.find("worker threads") != std::string::npos)
                return w;
        return std::string();
    };
    EXPECT_EQ(advice(), "") << "nothing waited yet";
    // One reservation asks for every disk at once.
    std::vector<sdbus::Struct<std::string, std::string>> disks;
    for (unsigned i = 0; i < workers + 4; i++)
        disks.push_back({"/srv/many-" + std::to_string(i) + ".img", "exclusive"});
    client().RegisterMachine("many", disks, kNoOptions);
    const std::string said = advice();
    EXPECT_NE(said.find("waited for one of sanlock's " + std::to_string(workers) + " worker threads"),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("max_worker_threads = "), std::string::npos) << said;
    EXPECT_NE(said.find("/etc/sanlock/sanlock.conf"), std::string::npos) << said;
    const std::string log = host->agent->whole_log();
    const std::string logged = "worker threads: starting many machines at once is faster with more";
    EXPECT_NE(log.find(logged), std::string::npos) << host->agent->log();
    EXPECT_EQ(log.find(logged), log.rfind(logged)) << "logged once";
    client().ReleaseMachine("many");
}

// Lease files vmlease creates have lease_max_hosts host slots (sanlock's
// 2000 unset, as libvirt formats); a file that exists keeps its own: none is
// formatted again. The slots are the leader record's num_hosts (sanlock's
// leader.h: magic, version, flags, sector_size, then num_hosts at byte 16).
TEST_F(LeaseApi, NewLeaseFilesHaveLeaseMaxHostsSlotsAndExistingOnesKeepTheirs) {
    auto slots = [&](const std::string &disk) {
        const std::string file = std::get<1>(client().InspectDisk(disk));
        std::ifstream in(file, std::ios::binary);
        uint64_t num_hosts = 0;
        in.seekg(16);
        in.read(reinterpret_cast<char *>(&num_hosts), sizeof num_hosts);
        EXPECT_TRUE(in.good()) << file;
        return num_hosts;
    };
    const std::string wide = "/srv/slots-default.img", narrow = "/srv/slots-64.img";
    client().AcquireDisk("slots", wide, "exclusive", kNoOptions);
    EXPECT_EQ(slots(wide), 2000u);
    client().ReleaseDisk("slots", wide);

    const std::string path = host->agent->config_path();
    const std::string good = read_file(path);
    write_file(path, good + "lease_max_hosts: 64\n");
    std::string message;
    EXPECT_EQ(error_of([&] { client().Reload(); }, &message), "org.vmlease.Error.ConfigInvalid");
    EXPECT_NE(message.find("lease_max_hosts cannot change while vmleased runs"), std::string::npos) << message;
    host->agent->stop();
    host->agent->start();
    ASSERT_TRUE(client().wait_property("LockspaceState", "joined")) << host->agent->log();
    client().AcquireDisk("slots", narrow, "exclusive", kNoOptions);
    EXPECT_EQ(slots(narrow), 64u) << host->agent->log();
    client().AcquireDisk("slots", wide, "exclusive", kNoOptions);
    EXPECT_EQ(slots(wide), 2000u) << "an existing lease file was formatted again";
    client().ReleaseDisk("slots", wide);
    client().ReleaseDisk("slots", narrow);

    write_file(path, good);
    host->agent->stop();
    host->agent->start();
    ASSERT_TRUE(client().wait_property("LockspaceState", "joined")) << host->agent->log();
}

// A machine whose lease file exists never waits behind other machines' lease
// files being made. On a host whose lease directory is faultfs, the fsync of
// every new lease file (under its private name .vmlease-tmp.2.*) hangs; as
// many new disks are asked for as the agent has sanlock connections, then a
// disk whose lease file exists: it is taken while the others still hang.
// (Made on the connections' workers, each new file would hold one, and the
// last acquire would wait for storage that never answers.)
TEST_F(LeaseApi, ADiskWhoseLeaseFileExistsDoesNotWaitForOthersBeingFormatted) {
    TempDir dir("vmlease-format");
    FaultFs fs(dir / "backing", dir / "leases", dir / "faultfs.log");
    Host h(dir.path(), fs.mountpoint(), 2);
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined")) << h.agent->log();
    const std::string ready = "/srv/format-ready.img";
    h.client->AcquireDisk("ready", ready, "exclusive", kNoOptions);
    h.client->ReleaseDisk("ready", ready);
    const unsigned connections = h.agent->sanlock_connections();
    ASSERT_GT(connections, 0u) << h.agent->log();

    fs.set("hang .vmlease-tmp.2.*");
    struct Heal {  // before the host is stopped, whatever happens
        FaultFs &fs;
        ~Heal() { fs.set("ok"); }
    } heal{fs};
    const std::map<std::string, std::string> bus{{"DBUS_SYSTEM_BUS_ADDRESS", h.bus_address}};
    auto acquire = [&](const std::string &owner, const std::string &disk) {
        return Child({required_env("VMLEASECTL"), "--no-ask-password", "acquire", owner, disk}, bus,
                     dir / (owner + ".log"));
    };
    std::vector<Child> waiting;
    for (unsigned i = 0; i < connections; i++)
        waiting.push_back(acquire("new-" + std::to_string(i), "/srv/format-new-" + std::to_string(i) + ".img"));
    // Each new file's fsync hangs where it is made (at most 16 at once).
    const unsigned making = std::min(connections, 16u);
    ASSERT_TRUE(eventually([&] { return fs.hung() >= making; }, 20s))
        << "hung: " << fs.hung() << "\n" << h.agent->log();

    Child taken = acquire("ready", ready);
    EXPECT_EQ(taken.wait(10s), 0) << read_file(taken.log_path()) << h.agent->log();
    EXPECT_GE(fs.hung(), making) << "the new files were still being made meanwhile";

    fs.set("ok");
    for (auto &c : waiting)
        EXPECT_EQ(c.wait(30s), 0) << read_file(c.log_path());
    EXPECT_EQ(h.client->ListLeases().size(), connections + 1);
    h.client->ReleaseDisk("ready", ready);
    for (unsigned i = 0; i < connections; i++)
        h.client->ReleaseDisk("new-" + std::to_string(i), "/srv/format-new-" + std::to_string(i) + ".img");
    h.check();
}

// vmleased (root) formats and links a new lease file through the file it
// created, not through its name: whoever may write the lease directory and
// swaps the private name for a link to another file while the lease file is
// being made gets nothing written but the file vmleased made. The swap is
// made while vmleased's creating open is held (a fanotify permission event,
// tests/support/swap_on_create.c).
TEST_F(LeaseApi, ANewLeaseFileSwappedForALinkWhileBeingMadeWritesNoOtherFile) {
    const std::string victim = *root / "victim";
    const std::string content(2 << 20, 'v');
    write_file(victim, content);
    Child swapper({required_env("SWAP_ON_CREATE"), lease_dir, ".vmlease-tmp.1.", victim}, {}, *root / "swap.log");
    ASSERT_TRUE(eventually([&] { return read_file(swapper.log_path()).find("ready") != std::string::npos; }, 10s))
        << read_file(swapper.log_path());

    const std::string disk = "/srv/swap.img";
    client().AcquireDisk("swap", disk, "exclusive", kNoOptions);
    EXPECT_EQ(swapper.wait(10s), 0) << read_file(swapper.log_path());
    std::smatch m;
    const std::string said = read_file(swapper.log_path());
    ASSERT_TRUE(std::regex_search(said, m, std::regex(R"(swapped (\S+))"))) << said;
    const std::string moved = lease_dir + "/" + std::string(m[1]) + ".moved";
    EXPECT_TRUE(read_file(victim) == content) << "the file the link named was written";
    const std::string file = std::get<1>(client().InspectDisk(disk));
    EXPECT_FALSE(std::filesystem::is_symlink(file)) << "the link became the lease file";
    EXPECT_TRUE(std::filesystem::equivalent(file, moved)) << "the lease file is not the one vmleased made";
    client().ReleaseDisk("swap", disk);
    std::filesystem::remove(moved);
}

}  // namespace
