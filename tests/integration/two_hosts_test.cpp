// Two simulated hosts (two sanlock daemons, two buses, two vmleased with
// host_id 1 and 2) sharing one lease directory: a disk leased on one host
// cannot be leased on the other.
#include "host.hpp"

#include <gtest/gtest.h>

#include <filesystem>

using namespace vmtest;

namespace {

const std::string kDisk = "/var/lib/libvirt/images/demo.img";
const std::map<std::string, sdbus::Variant> kNoOptions;

class TwoHosts : public HostsSuite<TwoHosts> {
protected:
    static void SetUpTestSuite() {
        make_site("vmlease-2hosts");
        start_hosts({HostOptions{}, HostOptions{}});
    }
    void TearDown() override {
        // Every test starts with nothing held.
        for (const auto &h : hosts)
            for (const auto &l : h->client->ListLeases())
                h->client->ReleaseDisk(l.get<2>(), l.get<0>());
        HostsSuite::TearDown();
    }
};

TEST_F(TwoHosts, ADiskLeasedOnOneHostIsRefusedOnTheOther) {
    h1->client->AcquireDisk("vm-a", kDisk, "exclusive", kNoOptions);

    std::string message;
    EXPECT_EQ(error_of([&] { h2->client->AcquireDisk("vm-b", kDisk, "exclusive", kNoOptions); }, &message),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(message.find("host id 1"), std::string::npos) << message;
    EXPECT_TRUE(h2->client->ListLeases().empty());

    // Host 2 can see who holds it.
    auto [resource, file, owners, version] = h2->client->InspectDisk(kDisk);
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].get<0>(), 1u);
    EXPECT_EQ(owners[0].get<3>(), "other host");
    EXPECT_NE(owners[0].get<2>(), "free");

    // Once host 1 lets go, host 2 gets it, and now host 1 is refused.
    h1->client->ReleaseDisk("vm-a", kDisk);
    EXPECT_NO_THROW(h2->client->AcquireDisk("vm-b", kDisk, "exclusive", kNoOptions));
    // Each host that takes it makes a new version of the lease.
    EXPECT_EQ(std::get<3>(h1->client->InspectDisk(kDisk)), version + 1);
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("vm-a", kDisk, "exclusive", kNoOptions); }, &message),
              "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(message.find("host id 2"), std::string::npos) << message;
    auto inspected = std::get<2>(h1->client->InspectDisk(kDisk));
    ASSERT_EQ(inspected.size(), 1u);
    EXPECT_EQ(inspected[0].get<0>(), 2u);
    EXPECT_EQ(inspected[0].get<3>(), "other host");
}

TEST_F(TwoHosts, SharedLeasesCoexistButExcludeExclusive) {
    const std::string disk = "/srv/cluster/quorum.img";
    h1->client->AcquireDisk("vm-a", disk, "shared", kNoOptions);
    EXPECT_NO_THROW(h2->client->AcquireDisk("vm-b", disk, "shared", kNoOptions));
    EXPECT_EQ(std::get<2>(h1->client->InspectDisk(disk)).size(), 2u);
    h2->client->ReleaseDisk("vm-b", disk);
    EXPECT_EQ(error_of([&] { h2->client->AcquireDisk("vm-b", disk, "exclusive", kNoOptions); }),
              "org.vmlease.Error.LeaseHeld");
}

TEST_F(TwoHosts, BothHostsCreatingTheSameLeaseFileAtOnceEndCorrect) {
    // Many disks raced from both hosts at once: each lease file is created
    // by one of them, and exactly one host ends up holding each disk.
    constexpr int kDisks = 20;
    std::vector<std::thread> threads;
    std::vector<std::string> result1(kDisks), result2(kDisks);
    for (int i = 0; i < kDisks; i++) {
        std::string disk = "/srv/race/disk" + std::to_string(i) + ".img";
        threads.emplace_back([&, i, disk] {
            result1[i] = error_of([&] { h1->client->AcquireDisk("vm-a", disk, "exclusive", kNoOptions); });
        });
        threads.emplace_back([&, i, disk] {
            result2[i] = error_of([&] { h2->client->AcquireDisk("vm-b", disk, "exclusive", kNoOptions); });
        });
    }
    for (auto &t : threads)
        t.join();
    for (int i = 0; i < kDisks; i++) {
        bool one = result1[i].empty(), two = result2[i].empty();
        EXPECT_TRUE(one != two) << "disk " << i << ": host1 '" << result1[i] << "' host2 '" << result2[i] << "'";
        EXPECT_EQ(one ? result2[i] : result1[i], "org.vmlease.Error.LeaseHeld") << "disk " << i;
    }
    size_t held = h1->client->ListLeases().size() + h2->client->ListLeases().size();
    EXPECT_EQ(held, static_cast<size_t>(kDisks));
    // No temporary files are left in the shared directory.
    for (const auto &entry : std::filesystem::directory_iterator(lease_dir))
        EXPECT_EQ(entry.path().filename().string().find(".vmlease-tmp"), std::string::npos) << entry.path();
}

}  // namespace
