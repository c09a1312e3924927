// The lease registry decides everything about leases; these tests drive it
// with requests and sanlock outcomes and check the Steps it returns.
#include "lease_registry.hpp"

#include "core/disk_path.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <optional>

using namespace vmlease;

namespace {

// The kind of error a reply that must fail carries; a success fails the test
// (instead of reading an empty optional).
std::optional<ErrorKind> kind_of(const Reply &r) {
    if (!r.error)
        ADD_FAILURE() << "the request succeeded";
    return r.error ? std::optional<ErrorKind>(r.error->kind) : std::nullopt;
}

const std::string kDisk = "/var/lib/libvirt/images/demo.img";
const std::string kRes = "bfa0240911bc17753e0b473688822159";

class Registry : public ::testing::Test {
protected:
    Registry() : reg(1) { reg.set_lockspace_state(LockspaceState::Joined); }
    LeaseRegistry reg;

    static const Reply &only_reply(const Step &s) {
        EXPECT_EQ(s.replies.size(), 1u);
        return s.replies.at(0);
    }
    static SanlockOutcome ok() { return {}; }
    static SanlockOutcome fail(int rv, std::vector<uint64_t> holders = {}) { return {rv, std::move(holders), ""}; }

    void hold(const std::string &owner, LeaseMode mode = LeaseMode::Exclusive, RequestId id = 1) {
        Step s = reg.acquire(id, owner, kDisk, kRes, mode);
        ASSERT_EQ(s.sanlock_effects.size(), 1u);
        Step d = reg.acquire_done(kRes, ok());
        ASSERT_EQ(d.replies.size(), 1u);
        ASSERT_FALSE(d.replies[0].error);
    }
};

TEST_F(Registry, AcquireNeedsJoinedLockspace) {
    LeaseRegistry fresh(1);
    Step s = fresh.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_TRUE(s.sanlock_effects.empty());
    ASSERT_TRUE(only_reply(s).error);
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LockspaceUnavailable);
    EXPECT_TRUE(fresh.leases().empty());
}

TEST_F(Registry, AcquireAsksSanlockThenRepliesAndAnnounces) {
    Step s = reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    auto *a = std::get_if<AcquireEffect>(&s.sanlock_effects[0]);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->resource, kRes);
    EXPECT_TRUE(s.replies.empty());
    EXPECT_EQ(reg.find(kRes)->state, LeaseState::Acquiring);

    Step d = reg.acquire_done(kRes, ok());
    EXPECT_EQ(only_reply(d).request, 7u);
    EXPECT_FALSE(only_reply(d).error);
    ASSERT_EQ(d.lease_changes.size(), 1u);
    EXPECT_EQ(d.lease_changes[0].kind, LeaseChange::Kind::Acquired);
    EXPECT_EQ(d.lease_changes[0].owner, "vm1");
    EXPECT_EQ(reg.find(kRes)->state, LeaseState::Held);
}

TEST_F(Registry, SameOwnerTwiceIsIdempotent) {
    hold("vm1");
    Step s = reg.acquire(2, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_TRUE(s.sanlock_effects.empty());
    EXPECT_FALSE(only_reply(s).error);
    EXPECT_TRUE(s.lease_changes.empty());
}

TEST_F(Registry, SecondOwnerOnThisHostGetsLeaseHeldNamingTheOwner) {
    hold("vm1");
    Step s = reg.acquire(2, "vm2", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_TRUE(s.sanlock_effects.empty());
    ASSERT_TRUE(only_reply(s).error);
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LeaseHeld);
    EXPECT_NE(only_reply(s).error->message.find("vm1"), std::string::npos);
    EXPECT_NE(only_reply(s).error->message.find("host id 1"), std::string::npos);
}

TEST_F(Registry, ConcurrentRequestWhileAcquiringIsRefusedForAnotherOwner) {
    reg.acquire(1, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step s = reg.acquire(2, "vm2", kDisk, kRes, LeaseMode::Exclusive);
    ASSERT_TRUE(only_reply(s).error);
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LeaseHeld);
    // the same owner asking again waits for the same sanlock call
    Step again = reg.acquire(3, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_TRUE(again.sanlock_effects.empty());
    EXPECT_TRUE(again.replies.empty());
    Step d = reg.acquire_done(kRes, ok());
    EXPECT_EQ(d.replies.size(), 2u);
    EXPECT_EQ(d.lease_changes.size(), 1u);
}

TEST_F(Registry, HeldElsewhereNamesTheHolderAndForgetsTheLease) {
    reg.acquire(1, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step d = reg.acquire_done(kRes, fail(-243, {2}));
    ASSERT_TRUE(only_reply(d).error);
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::LeaseHeld);
    EXPECT_NE(only_reply(d).error->message.find("host id 2"), std::string::npos);
    EXPECT_TRUE(d.lease_changes.empty());
    EXPECT_EQ(reg.find(kRes), nullptr);
}

TEST_F(Registry, SharedHeldElsewhereMapsEagainToLeaseHeld) {
    reg.acquire(1, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step d = reg.acquire_done(kRes, fail(-EAGAIN, {3}));
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::LeaseHeld);
}

TEST_F(Registry, OtherSanlockErrorsAreSanlockFailure) {
    reg.acquire(1, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step d = reg.acquire_done(kRes, fail(-223));
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::SanlockFailure);
    reg.acquire(2, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step e = reg.acquire_done(kRes, fail(-ENOSPC));
    EXPECT_EQ(kind_of(only_reply(e)), ErrorKind::LockspaceUnavailable);
}

TEST_F(Registry, ReleaseGoesToSanlockAndRemovesTheLease) {
    hold("vm1");
    Step s = reg.release(5, "vm1", kRes);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ReleaseEffect>(s.sanlock_effects[0]));
    EXPECT_TRUE(s.replies.empty());
    EXPECT_EQ(reg.find(kRes)->state, LeaseState::Releasing);
    Step d = reg.release_done(kRes, ok());
    EXPECT_FALSE(only_reply(d).error);
    ASSERT_EQ(d.lease_changes.size(), 1u);
    EXPECT_EQ(d.lease_changes[0].kind, LeaseChange::Kind::Released);
    EXPECT_TRUE(d.lease_changes[0].lease_gone);
    EXPECT_EQ(reg.find(kRes), nullptr);
}

TEST_F(Registry, ReleaseThatFailsOnDiskStillLetsGo) {
    // sanlock drops the lease from the connection before writing the release.
    hold("vm1");
    reg.release(5, "vm1", kRes);
    Step d = reg.release_done(kRes, fail(-EIO));
    EXPECT_FALSE(only_reply(d).error);
    EXPECT_EQ(reg.find(kRes), nullptr);
}

TEST_F(Registry, ReleaseOverABrokenConnectionKeepsTheLeaseHeld) {
    hold("vm1");
    reg.release(5, "vm1", kRes);
    Step d = reg.release_done(kRes, fail(-EPIPE));
    ASSERT_TRUE(only_reply(d).error);
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::SanlockFailure);
    EXPECT_TRUE(d.lease_changes.empty());
    ASSERT_NE(reg.find(kRes), nullptr);
    EXPECT_EQ(reg.find(kRes)->state, LeaseState::Held);
    EXPECT_EQ(reg.find(kRes)->owners, std::vector<std::string>{"vm1"});
}

TEST_F(Registry, ReleaseByWrongOwnerIsNoSuchLease) {
    hold("vm1");
    Step s = reg.release(5, "vm2", kRes);
    EXPECT_TRUE(s.sanlock_effects.empty());
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::NoSuchLease);
    EXPECT_EQ(reg.find(kRes)->state, LeaseState::Held);
}

TEST_F(Registry, SharedLeaseIsReleasedWhenTheLastOwnerGoes) {
    hold("vm1", LeaseMode::Shared);
    Step s = reg.acquire(2, "vm2", kDisk, kRes, LeaseMode::Shared);
    EXPECT_TRUE(s.sanlock_effects.empty());
    EXPECT_FALSE(only_reply(s).error);
    EXPECT_EQ(reg.find(kRes)->owners.size(), 2u);

    Step r1 = reg.release(3, "vm1", kRes);
    EXPECT_TRUE(r1.sanlock_effects.empty());
    EXPECT_FALSE(only_reply(r1).error);
    EXPECT_FALSE(r1.lease_changes.at(0).lease_gone);

    Step r2 = reg.release(4, "vm2", kRes);
    EXPECT_EQ(r2.sanlock_effects.size(), 1u);
    Step d = reg.release_done(kRes, ok());
    EXPECT_TRUE(d.lease_changes.at(0).lease_gone);
}

TEST_F(Registry, ExclusiveRefusedWhileSharedHeldHere) {
    hold("vm1", LeaseMode::Shared);
    Step s = reg.acquire(2, "vm2", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LeaseHeld);
}

TEST_F(Registry, AcquireDuringReleaseIsRetriedAfterIt) {
    hold("vm1");
    reg.release(5, "vm1", kRes);
    Step s = reg.acquire(6, "vm2", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_TRUE(s.replies.empty());
    EXPECT_TRUE(s.sanlock_effects.empty());
    Step d = reg.release_done(kRes, ok());
    ASSERT_EQ(d.sanlock_effects.size(), 1u);  // vm2's acquire starts now
    EXPECT_TRUE(std::holds_alternative<AcquireEffect>(d.sanlock_effects[0]));
    Step a = reg.acquire_done(kRes, ok());
    EXPECT_EQ(only_reply(a).request, 6u);
    EXPECT_EQ(reg.find(kRes)->owners, std::vector<std::string>{"vm2"});
}

TEST_F(Registry, ReleaseOwnerReleasesEverythingThenRepliesOnce) {
    const std::string disk2 = "/var/lib/libvirt/images/other.img", res2 = "0123456789abcdef0123456789abcdef";
    hold("vm1");
    reg.acquire(2, "vm1", disk2, res2, LeaseMode::Exclusive);
    reg.acquire_done(res2, ok());
    Step s = reg.release_owner(9, "vm1");
    EXPECT_EQ(s.sanlock_effects.size(), 2u);
    EXPECT_TRUE(s.replies.empty());
    Step d1 = reg.release_done(kRes, ok());
    EXPECT_TRUE(d1.replies.empty());
    Step d2 = reg.release_done(res2, ok());
    EXPECT_EQ(only_reply(d2).request, 9u);
    EXPECT_TRUE(reg.leases().empty());
    EXPECT_EQ(kind_of(only_reply(reg.release_owner(10, "vm1"))), ErrorKind::NoSuchOwner);
}

TEST_F(Registry, ReleasingAnOwnerWhoseAcquireIsInFlightGivesTheLeaseBack) {
    reg.acquire(1, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    Step r = reg.release_owner(2, "vm1");
    ASSERT_EQ(r.replies.size(), 2u);  // the acquire is answered, and the release
    for (const auto &reply : r.replies) {
        if (reply.request == 1)
            EXPECT_TRUE(reply.error);
        else
            EXPECT_FALSE(reply.error);
    }
    Step d = reg.acquire_done(kRes, ok());
    ASSERT_EQ(d.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ReleaseEffect>(d.sanlock_effects[0]));
    EXPECT_TRUE(d.lease_changes.empty());
    reg.release_done(kRes, ok());
    EXPECT_EQ(reg.find(kRes), nullptr);
}

TEST_F(Registry, LockspaceStateChangeIsReportedOnce) {
    EXPECT_TRUE(reg.set_lockspace_state(LockspaceState::Failed).lockspace_state_changed);
    EXPECT_FALSE(reg.set_lockspace_state(LockspaceState::Failed).lockspace_state_changed);
    EXPECT_STREQ(to_string(reg.lockspace_state()), "failed");
}

}  // namespace

TEST(LeaseRegistryOrphans, AnOrphanIsReleasedQuietlyAndAnAcquireWaitsForIt) {
    LeaseRegistry reg(1);
    reg.set_lockspace_state(LockspaceState::Joined);
    std::string res = lease_resource_name("/srv/o.img");
    Step s = reg.release_orphan(res, "/srv/o.img");
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::get<ReleaseEffect>(s.sanlock_effects[0]).orphan);
    EXPECT_TRUE(s.lease_changes.empty());
    Step waiting = reg.acquire(5, "vm", "/srv/o.img", res, LeaseMode::Exclusive);
    EXPECT_TRUE(waiting.sanlock_effects.empty());
    Step done = reg.release_done(res, {0, {}, ""});
    EXPECT_TRUE(std::none_of(done.lease_changes.begin(), done.lease_changes.end(),
                             [](const LeaseChange &c) { return c.kind == LeaseChange::Kind::Released; }));
    ASSERT_EQ(done.sanlock_effects.size(), 1u);
    EXPECT_EQ(std::get<AcquireEffect>(done.sanlock_effects[0]).disk, "/srv/o.img");
    // One that failed to release leaves nothing behind in the registry.
    std::string other = lease_resource_name("/srv/p.img");
    reg.release_orphan(other, "/srv/p.img");
    reg.release_done(other, {-ECONNRESET, {}, "gone"});
    EXPECT_EQ(reg.find(other), nullptr);
}

// --- trust boundaries: orphans, file-system errors ---------------------------

// After an agent restart sanlock answers -EUCLEAN: this host holds the lease
// as an orphan. An owner nothing entitles to it (any AcquireDisk caller) is
// refused, naming this host, and sanlock is not asked to adopt it.
TEST_F(Registry, AnOrphanIsNotAdoptedForAnOwnerNotEntitledToIt) {
    Step s = reg.acquire(7, "intruder", kDisk, kRes, LeaseMode::Exclusive);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_FALSE(std::get<AcquireEffect>(s.sanlock_effects[0]).adopt_orphan);
    Step d = reg.acquire_done(kRes, fail(-EUCLEAN));
    EXPECT_TRUE(d.sanlock_effects.empty());
    ASSERT_TRUE(only_reply(d).error);
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::LeaseHeld);
    EXPECT_EQ(only_reply(d).holders, std::vector<uint64_t>{1});
    EXPECT_TRUE(d.lease_changes.empty());
    EXPECT_EQ(reg.find(kRes), nullptr);
}

TEST_F(Registry, AnOrphanIsAdoptedForTheOwnerEntitledToIt) {
    Step s = reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, true);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::get<AcquireEffect>(s.sanlock_effects[0]).adopt_orphan);
    Step g = reg.acquire_done(kRes, ok());
    EXPECT_FALSE(only_reply(g).error);
    EXPECT_EQ(reg.find(kRes)->owners, std::vector<std::string>{"vm1"});
}

// A shared orphan wanted by an entitled and an unentitled owner at once:
// the entitled one takes it over, the other is refused.
TEST_F(Registry, OnlyTheEntitledWaitersTakeOverASharedOrphan) {
    reg.acquire(7, "intruder", kDisk, kRes, LeaseMode::Shared);
    reg.acquire(8, "vm1", kDisk, kRes, LeaseMode::Shared, 0, true);
    Step d = reg.acquire_done(kRes, fail(-EUCLEAN));
    ASSERT_EQ(d.replies.size(), 1u);
    EXPECT_EQ(d.replies[0].request, 7u);
    ASSERT_EQ(d.sanlock_effects.size(), 1u);
    Step g = reg.acquire_done(kRes, ok());
    EXPECT_EQ(only_reply(g).request, 8u);
    EXPECT_EQ(reg.find(kRes)->owners, std::vector<std::string>{"vm1"});
}

// An EEXIST from creating the lease file is no sanlock "held on this host".
TEST_F(Registry, AFileSystemErrorIsNotALeaseHeldElsewhere) {
    reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    SanlockOutcome out;
    out.io_errno = EEXIST;
    out.detail = "cannot create a file in /leases: File exists";
    Step d = reg.acquire_done(kRes, out);
    ASSERT_TRUE(only_reply(d).error);
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::Failed);
    EXPECT_NE(only_reply(d).error->message.find("File exists"), std::string::npos);
    EXPECT_TRUE(only_reply(d).holders.empty());
    SanlockOutcome full;
    full.io_errno = ENOSPC;
    reg.acquire(8, "vm1", kDisk, kRes, LeaseMode::Exclusive);
    EXPECT_EQ(kind_of(only_reply(reg.acquire_done(kRes, full))), ErrorKind::Failed);
}

// An administrator's ReleaseDisk of a disk nobody here holds gives back an
// orphan of this host, quietly; with no orphan the answer is NoSuchLease.
TEST_F(Registry, ReleasingADiskNobodyHoldsReleasesAnOrphan) {
    Step s = reg.release(9, "admin", kRes);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::get<ReleaseEffect>(s.sanlock_effects[0]).orphan);
    Step d = reg.release_done(kRes, fail(1));
    EXPECT_FALSE(only_reply(d).error);
    EXPECT_TRUE(d.lease_changes.empty());
    EXPECT_EQ(reg.find(kRes), nullptr);

    reg.release(10, "admin", kRes);
    Step none = reg.release_done(kRes, fail(0));
    ASSERT_TRUE(only_reply(none).error);
    EXPECT_EQ(kind_of(only_reply(none)), ErrorKind::NoSuchLease);
}

// sanlock answers -EUCLEAN to an adopting acquire too when the orphan is held
// in the other mode; asking again would loop for ever.
TEST_F(Registry, AnAdoptingAcquireRefusedAgainIsNotRetried) {
    Step s = reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, true);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    Step d = reg.acquire_done(kRes, fail(-EUCLEAN));
    EXPECT_TRUE(d.sanlock_effects.empty());
    ASSERT_TRUE(only_reply(d).error);
    EXPECT_EQ(kind_of(only_reply(d)), ErrorKind::SanlockFailure);
    EXPECT_NE(only_reply(d).error->message.find("other than exclusive"), std::string::npos);
    EXPECT_EQ(reg.find(kRes), nullptr);
}

// --- aliases (README, "Disk identity") ---------------------------------------

TEST_F(Registry, AliasesAreTakenAndGivenBackWithTheLeaseInOneSanlockCall) {
    const std::string link = "/var/lib/libvirt/link/demo.img";
    Step s = reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, false, {link});
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    auto *a = std::get_if<AcquireEffect>(&s.sanlock_effects[0]);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->resource, kRes);
    EXPECT_EQ(a->alias_resources, std::vector<std::string>{lease_resource_name(link)});
    reg.acquire_done(kRes, ok());
    EXPECT_EQ(reg.find(kRes)->aliases, std::vector<std::string>{link});
    // The state file keeps them, so a restarted agent adopts them too.
    auto saved = reg.saved_leases();
    ASSERT_EQ(saved.size(), 1u);
    EXPECT_EQ(saved[0].aliases, std::vector<std::string>{link});

    Step r = reg.release(8, "vm1", kRes);
    ASSERT_EQ(r.sanlock_effects.size(), 1u);
    auto *rel = std::get_if<ReleaseEffect>(&r.sanlock_effects[0]);
    ASSERT_NE(rel, nullptr);
    EXPECT_EQ(rel->alias_resources, std::vector<std::string>{lease_resource_name(link)});
}

TEST_F(Registry, ANameAnotherLeaseHereHoldsIsThatLeasesDisk) {
    const std::string link = "/var/lib/libvirt/link/demo.img";
    ASSERT_FALSE(reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, false, {link}).sanlock_effects.empty());
    reg.acquire_done(kRes, ok());
    // Another owner naming the disk by its alias's identity (e.g. with
    // identity: path), or with the same alias under another identity.
    Step s = reg.acquire(8, "vm2", link, lease_resource_name(link), LeaseMode::Exclusive);
    EXPECT_TRUE(s.sanlock_effects.empty());
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LeaseHeld);
    EXPECT_NE(only_reply(s).error->message.find("vm1"), std::string::npos) << only_reply(s).error->message;
    const std::string other = "/srv/other.img";
    s = reg.acquire(9, "vm2", other, lease_resource_name(other), LeaseMode::Exclusive, 0, false, {link});
    EXPECT_TRUE(s.sanlock_effects.empty());
    EXPECT_EQ(kind_of(only_reply(s)), ErrorKind::LeaseHeld);
    EXPECT_EQ(reg.find(lease_resource_name(other)), nullptr);
}

TEST_F(Registry, AnAliasTheOwnerHoldsAsALeaseOfItsOwnIsNotTakenTwice) {
    // Before an upgrade the disk's lease was named after the link; the
    // machine keeps it, and its new identity's lease does not ask for it again.
    const std::string link = "/var/lib/libvirt/link/demo.img";
    const std::string old = lease_resource_name(link);
    ASSERT_FALSE(reg.acquire(7, "vm1", link, old, LeaseMode::Exclusive).sanlock_effects.empty());
    reg.acquire_done(old, ok());
    Step s = reg.acquire(8, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, false, {link});
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::get<AcquireEffect>(s.sanlock_effects[0]).alias_resources.empty());
    reg.acquire_done(kRes, ok());
    EXPECT_TRUE(reg.find(kRes)->aliases.empty());
    EXPECT_EQ(reg.find(old)->owners, std::vector<std::string>{"vm1"});
}

TEST_F(Registry, AnOldNameTheOwnersNewLeaseHoldsAsAnAliasIsThatLease) {
    // After an upgrade: the identity's lease (with the old name as alias) is
    // being taken when the state file's old name is asked for, by the same
    // owner; and later again (a retry after a lock failure).
    const std::string link = "/var/lib/libvirt/link/demo.img";
    const std::string old = lease_resource_name(link);
    ASSERT_EQ(reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 0, true, {link}).sanlock_effects.size(), 1u);
    Step s = reg.acquire(8, "vm1", link, old, LeaseMode::Exclusive, 0, true);
    EXPECT_TRUE(s.sanlock_effects.empty());  // no second sanlock call, no refusal
    EXPECT_TRUE(s.replies.empty());  // waits with the lease
    Step d = reg.acquire_done(kRes, ok());
    ASSERT_EQ(d.replies.size(), 2u);
    for (const auto &r : d.replies)
        EXPECT_FALSE(r.error) << r.request;
    Step again = reg.acquire(9, "vm1", link, old, LeaseMode::Exclusive, 0, true);
    ASSERT_EQ(again.replies.size(), 1u);
    EXPECT_FALSE(again.replies[0].error);
    // Anyone else asking for the old name is refused, naming the holder.
    Step other = reg.acquire(10, "vm2", link, old, LeaseMode::Exclusive);
    EXPECT_EQ(kind_of(only_reply(other)), ErrorKind::LeaseHeld);
    EXPECT_NE(only_reply(other).error->message.find("vm1"), std::string::npos);
}

TEST_F(Registry, AnAliasTheOwnersOwnSanlockClientHoldsIsNotOurs) {
    // libvirt's plugin in the VM holds the literal path's lease: the agent
    // took the identity's alone and must never give the alias back.
    const std::string link = "/var/lib/libvirt/link/demo.img";
    reg.acquire(7, "vm1", kDisk, kRes, LeaseMode::Exclusive, 4242, false, {link});
    SanlockOutcome out;
    out.owner_held_aliases = {lease_resource_name(link)};
    Step d = reg.acquire_done(kRes, out);
    EXPECT_FALSE(only_reply(d).error);
    EXPECT_TRUE(reg.find(kRes)->aliases.empty());
    Step r = reg.release(8, "vm1", kRes);
    ASSERT_EQ(r.sanlock_effects.size(), 1u);
    EXPECT_TRUE(std::get<ReleaseEffect>(r.sanlock_effects[0]).alias_resources.empty());
}
