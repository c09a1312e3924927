// A hostile caller: thousands of calls with valid D-Bus types but wrong
// values (fixed seed). Every call must get its expected error, the daemon
// must stay up, and no lease or lease file may change.
#include "host.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

using namespace vmtest;

namespace {

constexpr unsigned kSeed = 20261121;
constexpr int kCalls = 3000;
const std::string kKeeperDisk = "/var/lib/libvirt/images/keeper.img";

std::set<std::string> files_in(const std::string &dir) {
    std::set<std::string> out;
    for (const auto &e : std::filesystem::directory_iterator(dir))
        out.insert(e.path().filename().string());
    return out;
}

TEST(HostileInput, EveryBadCallGetsAnErrorAndNothingChanges) {
    Site site("vmlease-hostile");
    std::string lease_dir = site.lease_dir();
    Host h(site.root.path(), lease_dir, 1);
    ManagerClient &c = *h.client;
    ASSERT_TRUE(c.wait_property("LockspaceState", "joined"));
    c.AcquireDisk("keeper", kKeeperDisk, "exclusive", {});
    auto leases_before = c.ListLeases();
    auto files_before = files_in(lease_dir);

    std::mt19937 rng(kSeed);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto random_string = [&](size_t len, const std::string &alphabet) {
        std::string s;
        for (size_t i = 0; i < len; i++)
            s += alphabet[pick(alphabet.size())];
        return s;
    };
    const std::string name_chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.";
    const std::string bad_chars = "/ !$%&*()[]{}<>?|\\\"'`~#,;=\t";
    auto valid_owner = [&] { return "o" + random_string(1 + pick(30), name_chars); };
    auto bad_owner = [&] {
        std::string s = valid_owner();
        s.insert(pick(s.size() + 1), 1, bad_chars[pick(bad_chars.size())]);
        return s;
    };
    auto valid_disk = [&] { return "/srv/hostile/" + random_string(1 + pick(40), name_chars); };

    std::map<std::string, std::map<std::string, int>> tally;  // case -> error name -> count
    std::string last_message;
    auto expect = [&](const std::string &what, const std::set<std::string> &allowed, const std::function<void()> &call) {
        std::string name = error_of(call, &last_message);
        tally[what][name.empty() ? "(success)" : name]++;
        EXPECT_TRUE(allowed.count(name)) << what << " got '" << name << "': " << last_message;
    };
    const std::set<std::string> invalid{"org.freedesktop.DBus.Error.InvalidArgs"};
    auto raw = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(h.bus_address), "org.vmlease",
                                  "/org/vmlease");

    for (int i = 0; i < kCalls; i++) {
        switch (pick(13)) {
        case 0:
            expect("bad owner", invalid, [&] { c.AcquireDisk(bad_owner(), valid_disk(), "exclusive", {}); });
            break;
        case 1:
            expect("huge owner", invalid,
                   [&] { c.AcquireDisk(std::string(256 + pick(70000), 'o'), valid_disk(), "exclusive", {}); });
            break;
        case 2:
            expect("huge disk", invalid,
                   [&] { c.AcquireDisk(valid_owner(), "/" + std::string(4095 + pick(100000), 'd'), "shared", {}); });
            break;
        case 3:
            expect("odd mode", invalid, [&] {
                c.AcquireDisk(valid_owner(), valid_disk(), random_string(pick(20), "EXCLUSIVEsharednone-"), {});
            });
            break;
        case 4:
            expect("unknown option", invalid, [&] {
                c.AcquireDisk(valid_owner(), valid_disk(), "exclusive",
                              {{random_string(1 + pick(10), name_chars), sdbus::Variant(uint32_t(pick(9)))}});
            });
            break;
        case 5:
            expect("keeper's disk for another owner", {"org.vmlease.Error.LeaseHeld"}, [&] {
                c.AcquireDisk(valid_owner(), pick(2) ? kKeeperDisk : "/var/lib/libvirt//images/./keeper.img",
                              pick(2) ? "exclusive" : "shared", {});
            });
            break;
        case 6:
            expect("release unknown", {"org.vmlease.Error.NoSuchLease"},
                   [&] { c.ReleaseDisk(valid_owner(), valid_disk()); });
            break;
        case 7:
            expect("release keeper's disk as another owner", {"org.vmlease.Error.NoSuchLease"},
                   [&] { c.ReleaseDisk(valid_owner(), kKeeperDisk); });
            break;
        case 8:
            expect("release unknown machine", {"org.vmlease.Error.NoSuchOwner"},
                   [&] { c.ReleaseMachine(valid_owner()); });
            break;
        case 9:
            expect("inspect unleased disk", {"org.vmlease.Error.NoSuchLease"}, [&] { c.InspectDisk(valid_disk()); });
            break;
        case 10:
            expect("relative or root path", invalid, [&] {
                c.AcquireDisk(valid_owner(), pick(2) ? random_string(1 + pick(20), name_chars) : "/a/../..", "exclusive",
                              {});
            });
            break;
        case 11:
            expect("wrong signature", invalid, [&] {
                raw->callMethod("AcquireDisk").onInterface("org.vmlease.Manager").withArguments(uint32_t(pick(100)),
                                                                                                  valid_disk());
            });
            break;
        case 12:
            expect("unknown method", {"org.freedesktop.DBus.Error.UnknownMethod"},
                   [&] { raw->callMethod("Acquire" + random_string(3, "XYZ")).onInterface("org.vmlease.Manager"); });
            break;
        }
    }

    int total = 0;
    for (const auto &[what, names] : tally)
        for (const auto &[name, n] : names) {
            std::cout << what << ": " << n << " x " << name << "\n";
            total += n;
        }
    std::cout << total << " hostile calls" << std::endl;
    // Every kind of hostile call was made (the checks above ran on each).
    EXPECT_EQ(tally.size(), 13u) << "some kinds of hostile call were never made";

    EXPECT_TRUE(h.agent->child().running()) << h.agent->log();
    auto leases_after = c.ListLeases();
    ASSERT_EQ(leases_after.size(), leases_before.size());
    EXPECT_EQ(leases_after[0].get<0>(), leases_before[0].get<0>());
    EXPECT_EQ(leases_after[0].get<2>(), "keeper");
    EXPECT_EQ(leases_after[0].get<4>(), "held");
    EXPECT_EQ(c.LeaseCount(), 1u);
    EXPECT_EQ(files_in(lease_dir), files_before);
    auto owners = std::get<2>(c.InspectDisk(kKeeperDisk));
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].get<0>(), 1u);
}

}  // namespace
