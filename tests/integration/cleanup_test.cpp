// Safe cleanup of unused lease files (CleanupLeases, vmleasectl cleanup):
// two simulated hosts share a lease directory; host 1 cleans up while host 2
// holds leases. Nothing in use anywhere may be deleted.
#include "faultfs.hpp"
#include "host.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <thread>

using namespace vmtest;

namespace {

const std::map<std::string, sdbus::Variant> kNoOptions;
constexpr int kMinAge = 2;  // host 1's cleanup_min_age, seconds

std::string disk(const std::string &name) { return "/var/lib/libvirt/images/" + name + ".img"; }

class Cleanup : public HostsSuite<Cleanup> {
protected:
    static void SetUpTestSuite() {
        HostOptions o;
        o.extra_yaml = "cleanup_min_age: " + std::to_string(kMinAge) + "\n";
        make_site("vml-cleanup");
        start_hosts({o, HostOptions{}});
    }
    // A test host's faultfs outlives the test body: hosts stop in TearDown first.
    void TearDown() override {
        HostsSuite::TearDown();
        faulty.reset();
    }
    static std::string file_of(Host &h, const std::string &d) { return std::get<1>(h.client->InspectDisk(d)); }
    static inline std::unique_ptr<FaultFs> faulty;
    static std::vector<std::string> sorted(std::vector<std::string> v) {
        std::sort(v.begin(), v.end());
        return v;
    }
};

TEST_F(Cleanup, OnlyFilesNoHostUsesAreDeletedAndDryRunDeletesNothing) {
    // Host 2 holds a and b; c (taken and given back on host 1) and d (on
    // host 2) are unused; e is held on host 1 itself.
    for (const char *n : {"a", "b", "d"})
        h2->client->AcquireDisk("vm-2", disk(n), "exclusive", kNoOptions);
    h2->client->AcquireDisk("vm-3", disk("s"), "shared", kNoOptions);
    h2->client->ReleaseDisk("vm-2", disk("d"));
    h1->client->AcquireDisk("vm-1", disk("c"), "exclusive", kNoOptions);
    h1->client->ReleaseDisk("vm-1", disk("c"));
    h1->client->AcquireDisk("vm-1", disk("e"), "exclusive", kNoOptions);
    std::string unused_c = file_of(*h1, disk("c")), unused_d = file_of(*h1, disk("d"));
    std::vector<std::string> in_use;
    for (const char *n : {"a", "b", "s", "e"})
        in_use.push_back(file_of(*h1, disk(n)));

    // Everything is younger than the minimum age: nothing qualifies yet.
    EXPECT_TRUE(h1->client->CleanupLeases(true).empty());
    EXPECT_TRUE(h1->client->CleanupLeases(false).empty());
    std::this_thread::sleep_for(std::chrono::seconds(kMinAge + 1));  // let the files age

    // A dry run only reads: it takes no lease, so no lease's version moves on.
    const uint64_t version_c = std::get<3>(h1->client->InspectDisk(disk("c")));
    const uint64_t version_d = std::get<3>(h1->client->InspectDisk(disk("d")));
    auto would = h1->client->CleanupLeases(true);
    EXPECT_EQ(sorted(would), sorted({unused_c, unused_d}));
    for (const auto &f : would)
        EXPECT_TRUE(std::filesystem::exists(f)) << "a dry run deleted " << f;
    EXPECT_EQ(std::get<3>(h1->client->InspectDisk(disk("c"))), version_c) << "the dry run took the lease of c";
    EXPECT_EQ(std::get<3>(h1->client->InspectDisk(disk("d"))), version_d) << "the dry run took the lease of d";

    auto removed = h1->client->CleanupLeases(false);
    EXPECT_EQ(sorted(removed), sorted({unused_c, unused_d}));
    EXPECT_FALSE(std::filesystem::exists(unused_c));
    EXPECT_FALSE(std::filesystem::exists(unused_d));
    for (const auto &f : in_use)
        EXPECT_TRUE(std::filesystem::exists(f)) << "deleted a lease file in use: " << f;
    EXPECT_TRUE(std::filesystem::exists(lease_dir + "/__LIBVIRT__DISKS__"));

    // The holders still hold; other hosts are still kept out.
    EXPECT_EQ(h2->client->ListLeases().size(), 3u);
    EXPECT_EQ(h1->client->ListLeases().size(), 1u);
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("vm-1", disk("a"), "exclusive", kNoOptions); }),
              "org.vmlease.Error.LeaseHeld");
    // A deleted lease file is simply made again when its disk is next used.
    h2->client->AcquireDisk("vm-2", disk("c"), "exclusive", kNoOptions);
    EXPECT_TRUE(std::filesystem::exists(unused_c));
    // A second run finds nothing more to do.
    EXPECT_TRUE(h1->client->CleanupLeases(false).empty());
    std::string out;
    EXPECT_EQ(run({required_env("VMLEASECTL"), "--no-ask-password", "cleanup", "--dry-run"},
                  {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, &out),
              0)
        << out;

    for (const auto &l : h2->client->ListLeases())
        h2->client->ReleaseDisk(l.get<2>(), l.get<0>());
    h1->client->ReleaseDisk("vm-1", disk("e"));
}

TEST_F(Cleanup, FilesThatAreNotLeasesAreNeverTouched) {
    std::string notes = lease_dir + "/README", odd = lease_dir + "/0123456789abcdef0123456789ABCDEF";
    write_file(notes, "shared lease directory\n");
    write_file(odd, "not ours\n");
    std::this_thread::sleep_for(std::chrono::seconds(kMinAge + 1));
    auto removed = h1->client->CleanupLeases(false);
    EXPECT_TRUE(std::filesystem::exists(notes));
    EXPECT_TRUE(std::filesystem::exists(odd));
    for (const auto &f : removed)
        EXPECT_NE(f, notes);
}

// A file named like a lease that sanlock cannot read as one is neither
// deleted nor skipped silently: the call fails naming it and how many other
// files were removed anyway; vmleasectl says the same and exits non-zero.
TEST_F(Cleanup, AFileItCannotHandleFailsTheCallNamingItAndTheCountRemoved) {
    const std::string unused = disk("f");
    h2->client->AcquireDisk("vm-2", unused, "exclusive", kNoOptions);
    h2->client->ReleaseDisk("vm-2", unused);
    const std::string unused_file = file_of(*h1, unused);
    const std::string bogus = lease_dir + "/" + lease_name("/srv/not-a-lease.img");
    write_file(bogus, std::string(4096, 'z'));
    std::this_thread::sleep_for(std::chrono::seconds(kMinAge + 1));

    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->CleanupLeases(false); }, &message), "org.vmlease.Error.Failed");
    EXPECT_NE(message.find("could not clean up 1 lease file(s): " + bogus + ": "), std::string::npos) << message;
    // Other files earlier tests left unused are removed too: at least this one.
    const size_t at = message.find("; removed ");
    ASSERT_NE(at, std::string::npos) << message;
    EXPECT_GE(std::stoul(message.substr(at + 10)), 1u) << message;
    EXPECT_NE(message.find(" other(s)", at), std::string::npos) << message;
    EXPECT_FALSE(std::filesystem::exists(unused_file)) << "the file it could handle was not removed";
    EXPECT_EQ(read_file(bogus), std::string(4096, 'z')) << "the file it could not handle was changed";

    std::string out;
    EXPECT_NE(run({required_env("VMLEASECTL"), "--no-ask-password", "cleanup"},
                  {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, &out),
              0)
        << out;
    EXPECT_NE(out.find(bogus), std::string::npos) << out;
    std::filesystem::remove(bogus);
}

// The cleanup deletes a file only if its path still names the file whose
// lease it took: one put in its place meanwhile (another host's new lease
// file for that disk, a restore from backup) is left alone. Host 3's lease
// directory is faultfs over another backing directory, so that sanlock's read
// of exactly that file can be held while the file is replaced.
TEST_F(Cleanup, AFileReplacedWhileItsLeaseIsBeingTakenIsNotDeleted) {
    faulty = std::make_unique<FaultFs>(*root / "backing-r", *root / "leases-r", *root / "faultfs-r.log");
    FaultFs &fs = *faulty;
    HostOptions o;
    o.extra_yaml = "cleanup_min_age: 0\n";
    Host &h3 = test_host(3, fs.mountpoint(), o);
    ASSERT_TRUE(h3.client->wait_property("LockspaceState", "joined")) << h3.agent->log();
    h3.client->AcquireDisk("vm-r", disk("r"), "exclusive", kNoOptions);
    h3.client->ReleaseDisk("vm-r", disk("r"));
    const std::string file = file_of(h3, disk("r"));
    const std::string name = std::filesystem::path(file).filename();

    fs.set("hang " + name);
    Child cleanup({required_env("VMLEASECTL"), "--no-ask-password", "cleanup"},
                  {{"DBUS_SYSTEM_BUS_ADDRESS", h3.bus_address}}, *root / "cleanup-r.log");
    // The cleanup has looked at the file and sanlock is reading it to take its lease.
    ASSERT_TRUE(eventually([&] { return fs.hung() > 0; }, 10s)) << read_file(*root / "faultfs-r.log");
    // Meanwhile another file takes its place: same content, another inode.
    // Done in the backing directory, as another host would on the shared
    // storage (through the mount, the rename would wait for the file's hung read).
    const std::string backing = *root / "backing-r";
    std::filesystem::copy_file(backing + "/" + name, backing + "/replacement");
    std::filesystem::rename(backing + "/replacement", backing + "/" + name);
    struct stat replaced {};
    ASSERT_EQ(stat(file.c_str(), &replaced), 0);
    fs.set("ok");

    ASSERT_NE(cleanup.wait(30s), -1) << read_file(cleanup.log_path());
    const std::string out = read_file(cleanup.log_path());
    EXPECT_EQ(cleanup.status(), 0) << out;
    EXPECT_EQ(out.find(file), std::string::npos) << "the cleanup reported the replaced file removed:\n" << out;
    struct stat now {};
    ASSERT_EQ(stat(file.c_str(), &now), 0) << "the file put in place of the checked one was deleted";
    EXPECT_EQ(now.st_ino, replaced.st_ino);
}

TEST_F(Cleanup, SanlockRunningWithoutItsWatchdogIsWarnedAbout) {
    // The test hosts run "sanlock daemon -w 0", as Debian ships it.
    auto warnings = h1->client->Warnings();
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("without its watchdog"), std::string::npos) << warnings[0];
    EXPECT_NE(h1->agent->log().find("without its watchdog"), std::string::npos);
    std::string out;
    EXPECT_EQ(run({required_env("VMLEASECTL"), "status"}, {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, &out), 0);
    EXPECT_NE(out.find("without its watchdog"), std::string::npos) << out;
}

}  // namespace
