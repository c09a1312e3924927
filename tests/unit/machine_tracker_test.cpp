// The machine tracker decides which disks a machine needs and what happens
// on a conflict; driven here with the real lease registry and sanlock
// outcomes supplied by the test.
#include "machine_tracker.hpp"

#include "core/disk_path.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <map>
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

class Tracker : public ::testing::Test {
protected:
    Tracker() : reg(1), tracker(reg, config) {
        config.host_id = 1;
        config.discovery.include = {"/var/lib/libvirt/images/*"};
        config.discovery.exclude = {"/var/lib/libvirt/images/tmp-*"};
        MachineRule rule;
        rule.match = "db-*";
        rule.disks = {{"/dev/disk/by-path/lun-1", LeaseMode::Exclusive}, {"/srv/shared.img", LeaseMode::Shared},
                      {"/srv/iso.img", LeaseMode::None}};
        rule.on_lockfailure = LockFailureAction::Pause;
        config.machines.push_back(rule);
        reg.set_lockspace_state(LockspaceState::Joined);
    }

    // Apply a step the way the daemon does: sanlock answers every effect with
    // `rv`, and replies to internal requests go back to the tracker.
    Step run(Step step, int rv = 0, std::vector<uint64_t> holders = {}) {
        Step all;
        while (true) {
            Step next;
            for (const auto &r : step.replies)
                if (is_internal(r.request))
                    next.append(tracker.lease_reply(r));
            for (const auto &e : step.sanlock_effects) {
                if (auto *a = std::get_if<AcquireEffect>(&e))
                    next.append(reg.acquire_done(a->resource, sanlock_acquire(*a, rv, holders)));
                else if (auto *r = std::get_if<ReleaseEffect>(&e))
                    next.append(reg.release_done(r->resource, {0, {}, ""}));
            }
            all.append(std::move(step));
            if (next.empty())
                return all;
            step = std::move(next);
        }
    }
    // sanlock's lease versions: every acquire makes a new one, an acquire
    // pinned to another version fails with SANLK_ACQUIRE_LVER.
    SanlockOutcome sanlock_acquire(const AcquireEffect &a, int rv, const std::vector<uint64_t> &holders) {
        SanlockOutcome out{rv, holders, ""};
        if (rv != 0)
            return out;
        std::vector<std::string> names{a.resource};
        names.insert(names.end(), a.alias_resources.begin(), a.alias_resources.end());
        for (const auto &[name, pinned] : a.pins)
            if (lver[name] != pinned.lver || file[name] != pinned.file) {
                out.rv = -240;
                out.detail = "lease version changed";
                return out;
            }
        for (const auto &name : names)
            out.versions[name] = {++lver[name], file[name]};
        return out;
    }
    // run() for another tracker and registry (an agent started again).
    Step run_on(MachineTracker &t, LeaseRegistry &r, Step step) {
        Step all;
        while (!step.empty()) {
            Step next;
            for (const auto &reply : step.replies)
                if (is_internal(reply.request))
                    next.append(t.lease_reply(reply));
            for (const auto &e : step.sanlock_effects)
                if (auto *a = std::get_if<AcquireEffect>(&e))
                    next.append(r.acquire_done(a->resource, sanlock_acquire(*a, 0, {})));
            all.append(std::move(step));
            step = std::move(next);
        }
        return all;
    }
    std::map<std::string, uint64_t> lver;  // on "disk", by resource
    std::map<std::string, uint64_t> file;  // which lease file, by resource
    static MachineInfo vm(const std::string &name) { return {name, "vm", "machine-" + name + ".scope", 4242}; }
    static const Reply *reply_for(const Step &s, RequestId id) {
        for (const auto &r : s.replies)
            if (r.request == id)
                return &r;
        return nullptr;
    }

    Config config;
    LeaseRegistry reg;
    MachineTracker tracker;
};

TEST_F(Tracker, RuleDisksAreAcquiredForAMatchingMachine) {
    Step s = run(tracker.machine_appeared(vm("db-1")));
    const Machine *m = tracker.find("db-1");
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(m->disks.size(), 2u);  // mode none needs no lease
    for (const auto &d : m->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Held) << d.disk;
    EXPECT_EQ(m->on_lockfailure, LockFailureAction::Pause);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/shared.img"))->mode, LeaseMode::Shared);
    EXPECT_EQ(reg.find(lease_resource_name("/dev/disk/by-path/lun-1"))->owners, std::vector<std::string>{"db-1"});
    EXPECT_EQ(machine_state(*m), "running");
    EXPECT_EQ(s.lease_changes.size(), 2u);
}

TEST_F(Tracker, NonMatchingMachineGetsNoRuleDisks) {
    run(tracker.machine_appeared(vm("web-1")));
    ASSERT_NE(tracker.find("web-1"), nullptr);
    EXPECT_TRUE(tracker.find("web-1")->disks.empty());
    EXPECT_EQ(tracker.find("web-1")->on_lockfailure, LockFailureAction::Poweroff);
    EXPECT_TRUE(reg.leases().empty());
}

TEST_F(Tracker, TheHostItselfIsNotAMachine) {
    Step s = tracker.machine_appeared({".host", "host", "", 1});
    EXPECT_TRUE(s.machine_changes.empty());
    EXPECT_EQ(tracker.find(".host"), nullptr);
}

TEST_F(Tracker, DiscoveryTakesWritableIncludedFilesOnly) {
    run(tracker.machine_appeared(vm("web-1")));
    run(tracker.files_discovered("web-1", {{"/var/lib/libvirt/images/web.img", true},
                                           {"/var/lib/libvirt/images/base.img", false},
                                           {"/var/lib/libvirt/images/tmp-1.img", true},
                                           {"/home/user/other.img", true}}));
    const Machine *m = tracker.find("web-1");
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].disk, "/var/lib/libvirt/images/web.img");
    EXPECT_EQ(m->disks[0].source, MachineDisk::Source::Discovered);
    // Found again on the next scan: nothing new.
    Step again = tracker.files_discovered("web-1", {{"/var/lib/libvirt/images/web.img", true}});
    EXPECT_TRUE(again.sanlock_effects.empty());
}

TEST_F(Tracker, DiscoveryCanBeTurnedOff) {
    config.discovery.open_files = false;
    run(tracker.machine_appeared(vm("web-1")));
    run(tracker.files_discovered("web-1", {{"/var/lib/libvirt/images/web.img", true}}));
    EXPECT_TRUE(reg.leases().empty());
}

TEST_F(Tracker, ConflictTerminatesByDefaultAndNamesTheHolder) {
    Step s = run(tracker.machine_appeared(vm("db-1")), -243, {2});
    ASSERT_FALSE(s.conflicts.empty());
    EXPECT_EQ(s.conflicts[0].machine, "db-1");
    EXPECT_EQ(s.conflicts[0].holder_host_id, 2u);
    ASSERT_EQ(s.machine_effects.size(), 1u);  // once, though two disks conflict
    EXPECT_EQ(s.machine_effects[0].kind, MachineEffect::Kind::Terminate);
    EXPECT_EQ(s.machine_effects[0].machine, "db-1");
    EXPECT_EQ(machine_state(*tracker.find("db-1")), "conflict");
    EXPECT_TRUE(reg.leases().empty());
}

TEST_F(Tracker, ConflictWithWarnLeavesTheMachineAlone) {
    config.on_conflict = ConflictAction::Warn;
    Step s = run(tracker.machine_appeared(vm("db-1")), -243, {2});
    EXPECT_EQ(s.conflicts.size(), 2u);
    EXPECT_TRUE(s.machine_effects.empty());
}

TEST_F(Tracker, TwoMachinesOnThisHostWantingOneDiskConflict) {
    run(tracker.machine_appeared(vm("db-1")));
    Step s = run(tracker.machine_appeared(vm("db-2")));
    ASSERT_FALSE(s.conflicts.empty());
    EXPECT_EQ(s.conflicts[0].machine, "db-2");
    EXPECT_EQ(s.conflicts[0].holder_host_id, 1u);
    EXPECT_EQ(reg.find(lease_resource_name("/dev/disk/by-path/lun-1"))->owners, std::vector<std::string>{"db-1"});
}

TEST_F(Tracker, EverythingIsReleasedWhenTheMachineGoesAway) {
    run(tracker.machine_appeared(vm("db-1")));
    Step s = run(tracker.machine_gone("db-1"));
    EXPECT_EQ(tracker.find("db-1"), nullptr);
    EXPECT_TRUE(reg.leases().empty());
    EXPECT_EQ(s.machine_changes.back().kind, MachineChange::Kind::Removed);
}

TEST_F(Tracker, AMachineGoneBeforeItsLeaseArrivedGivesItBack) {
    Step pending = tracker.machine_appeared(vm("db-1"));  // acquires in flight
    ASSERT_EQ(pending.sanlock_effects.size(), 2u);
    run(tracker.machine_gone("db-1"));                    // nothing held yet to release
    run(std::move(pending));                              // sanlock answers now
    EXPECT_TRUE(reg.leases().empty());
}

TEST_F(Tracker, DisksThatFailedForLackOfTheLockspaceAreRetriedOnJoin) {
    reg.set_lockspace_state(LockspaceState::Joining);
    run(tracker.machine_appeared(vm("db-1")));
    for (const auto &d : tracker.find("db-1")->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Failed);
    reg.set_lockspace_state(LockspaceState::Joined);
    run(tracker.retry_failed());
    for (const auto &d : tracker.find("db-1")->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Held);
}

TEST_F(Tracker, DisksPerMachineAreBounded) {
    run(tracker.machine_appeared(vm("web-1")));
    std::vector<OpenFile> many;
    for (size_t i = 0; i < kMaxDisksPerMachine + 50; i++)
        many.push_back({"/var/lib/libvirt/images/d" + std::to_string(i) + ".img", true});
    run(tracker.files_discovered("web-1", many));
    EXPECT_EQ(tracker.find("web-1")->disks.size(), kMaxDisksPerMachine);
}

// --- RegisterMachine ------------------------------------------------------------

TEST_F(Tracker, AReservationTakesAllDisksAndIsBoundWhenTheMachineAppears) {
    Step s = run(tracker.reserve(77, "vm9", {{"/srv/a.img", LeaseMode::Exclusive}, {"/srv/b.img", LeaseMode::Shared},
                                              {"/srv/cd.iso", LeaseMode::None}}, 30));
    const Reply *reply = reply_for(s, 77);
    ASSERT_NE(reply, nullptr);
    EXPECT_FALSE(reply->error);
    EXPECT_EQ(reply->machine, "vm9");
    ASSERT_EQ(s.grace_timers.size(), 1u);
    EXPECT_EQ(s.grace_timers[0].seconds, 30u);
    EXPECT_EQ(machine_state(*tracker.find("vm9")), "reserved");
    EXPECT_EQ(reg.leases().size(), 2u);

    Step appear = run(tracker.machine_appeared(vm("vm9")));
    EXPECT_TRUE(appear.sanlock_effects.empty());  // nothing taken twice
    EXPECT_EQ(machine_state(*tracker.find("vm9")), "running");
    EXPECT_TRUE(run(tracker.reservation_expired("vm9")).empty());  // bound: the grace period no longer applies
    EXPECT_EQ(reg.leases().size(), 2u);

    run(tracker.machine_gone("vm9"));
    EXPECT_TRUE(reg.leases().empty());
}

TEST_F(Tracker, AReservationIsAllOrNothing) {
    // another local owner holds b.img
    run(tracker.machine_appeared(vm("db-1")));
    Step s = run(tracker.reserve(78, "vm9", {{"/srv/a.img", LeaseMode::Exclusive},
                                              {"/dev/disk/by-path/lun-1", LeaseMode::Exclusive}}, 30));
    const Reply *reply = reply_for(s, 78);
    ASSERT_NE(reply, nullptr);
    ASSERT_TRUE(reply->error);
    EXPECT_EQ(kind_of(*reply), ErrorKind::LeaseHeld);
    EXPECT_TRUE(s.grace_timers.empty());
    EXPECT_TRUE(s.machine_effects.empty());  // nothing is terminated for a reservation
    EXPECT_EQ(tracker.find("vm9"), nullptr);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/a.img")), nullptr);  // rolled back
    EXPECT_NE(reg.find(lease_resource_name("/dev/disk/by-path/lun-1")), nullptr);  // db-1 keeps its own
}

TEST_F(Tracker, AnExpiredReservationIsReleased) {
    run(tracker.reserve(79, "vm9", {{"/srv/a.img", LeaseMode::Exclusive}}, 5));
    EXPECT_EQ(reg.leases().size(), 1u);
    Step s = run(tracker.reservation_expired("vm9"));
    EXPECT_EQ(tracker.find("vm9"), nullptr);
    EXPECT_TRUE(reg.leases().empty());
    EXPECT_EQ(s.machine_changes.back().kind, MachineChange::Kind::Removed);
}

TEST_F(Tracker, ReservingANameTwiceIsRefused) {
    run(tracker.reserve(80, "vm9", {}, 5));
    Step s = tracker.reserve(81, "vm9", {}, 5);
    ASSERT_EQ(s.replies.size(), 1u);
    EXPECT_EQ(kind_of(s.replies[0]), ErrorKind::Failed);
}


// The names the daemon's udev namer would give: /dev/sdc is the by-path LUN
// once it exists; before that a rule's device path is Absent.
class DeviceNamer final : public DiskNamer {
public:
    DiskName canonical(const std::string &path) const override {
        if (path == "/dev/sdc" || path == kLun)
            return present ? DiskName{DiskName::Kind::Canonical, kLun} : DiskName{DiskName::Kind::Absent, path};
        return LexicalDiskNamer().canonical(path);
    }
    static inline const std::string kLun = "/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:lun-1";
    bool present = false;
};

class TrackerWithDevices : public Tracker {
protected:
    TrackerWithDevices() : devices(reg, config, namer) {
        config.machines[0].disks = {{DeviceNamer::kLun, LeaseMode::Exclusive}};
        config.discovery.include = {"/dev/disk/by-path/*"};
    }
    DeviceNamer namer;
    MachineTracker devices;
};

TEST_F(TrackerWithDevices, ARuleDiskWaitsForItsDeviceAndIsTakenWhenItAppears) {
    Step s = devices.machine_appeared(vm("db-1"));
    EXPECT_TRUE(s.sanlock_effects.empty());
    ASSERT_EQ(devices.find("db-1")->disks.size(), 1u);
    EXPECT_EQ(devices.find("db-1")->disks[0].state, MachineDisk::State::Waiting);
    EXPECT_STREQ(to_string(devices.find("db-1")->disks[0].state), "waiting-for-device");
    EXPECT_TRUE(devices.device_appeared().empty());  // some other device

    namer.present = true;
    s = devices.device_appeared();
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_EQ(std::get<AcquireEffect>(s.sanlock_effects[0]).resource, lease_resource_name(DeviceNamer::kLun));
    EXPECT_EQ(devices.find("db-1")->disks[0].state, MachineDisk::State::Acquiring);
    EXPECT_TRUE(devices.device_appeared().empty());  // taken once
}

TEST_F(TrackerWithDevices, DiscoveredDevicesAreMatchedAndLeasedByTheirCanonicalName) {
    namer.present = true;
    config.machines.clear();
    devices.machine_appeared(vm("web-1"));
    Step s = devices.files_discovered("web-1", {{"/dev/sdc", true}});
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_EQ(devices.find("web-1")->disks[0].disk, DeviceNamer::kLun);
    // A device path that resolves to nothing is not a disk to protect.
    namer.present = false;
    devices.machine_appeared(vm("web-2"));
    EXPECT_TRUE(devices.files_discovered("web-2", {{"/dev/sdc", true}}).sanlock_effects.empty());
    EXPECT_TRUE(devices.find("web-2")->disks.empty());
}

}  // namespace

namespace {

TEST_F(Tracker, ALockFailureAppliesEachActionAndReleasesAStoppedMachinesLeasesOnlyOnceItIsGone) {
    config.machines.push_back({"keep-*", {{"/srv/keep.img", LeaseMode::Exclusive}}, LockFailureAction::Ignore, {}, {}, {}});
    config.machines.push_back({"svc-*", {{"/srv/svc.img", LeaseMode::Exclusive}}, LockFailureAction::Restart, {}, {}, {}});
    config.machines.push_back({"scope-*", {{"/srv/scope.img", LeaseMode::Exclusive}}, LockFailureAction::Restart, {}, {}, {}});
    run(tracker.machine_appeared(vm("db-1")));  // pause (rule above)
    run(tracker.machine_appeared(vm("keep-1")));
    run(tracker.machine_appeared({"svc-1", "vm", "qemu-svc.service", 42}));
    run(tracker.machine_appeared(vm("scope-1")));
    run(reg.acquire(7, "api-owner", "/srv/api.img", lease_resource_name("/srv/api.img"), LeaseMode::Exclusive));

    reg.set_lockspace_state(LockspaceState::Failed);
    Step s = run(tracker.lock_failed());
    std::map<std::string, std::string> actions;
    for (const auto &f : s.lock_failures)
        actions[f.owner] = f.action;
    EXPECT_EQ(actions, (std::map<std::string, std::string>{{"api-owner", "release"}, {"db-1", "pause"},
                                                           {"keep-1", "ignore"}, {"scope-1", "restart"},
                                                           {"svc-1", "restart"}}));
    std::map<std::string, MachineEffect> effects;
    for (const auto &e : s.machine_effects)
        effects[e.machine] = e;
    ASSERT_EQ(effects.size(), 3u);  // ignore and a non-machine owner get no machine action
    EXPECT_EQ(effects["db-1"].kind, MachineEffect::Kind::Kill);
    EXPECT_EQ(effects["db-1"].signal, SIGSTOP);
    EXPECT_EQ(effects["svc-1"].kind, MachineEffect::Kind::Terminate);
    EXPECT_EQ(effects["scope-1"].kind, MachineEffect::Kind::Terminate);
    for (const auto &f : s.lock_failures) {
        if (f.owner == "scope-1") {
            EXPECT_NE(f.note.find("acts as terminate"), std::string::npos);
        }
    }
    // Paused, ignored and non-machine owners' leases go at once; those of
    // machines being stopped stay until the machines are gone.
    std::set<std::string> left;
    for (const auto &[resource, lease] : reg.leases())
        left.insert(lease.owners.begin(), lease.owners.end());
    EXPECT_EQ(left, (std::set<std::string>{"scope-1", "svc-1"}));
    run(tracker.machine_gone("svc-1"));
    EXPECT_EQ(reg.find(lease_resource_name("/srv/svc.img")), nullptr) << "released once svc-1 is gone";
    EXPECT_NE(reg.find(lease_resource_name("/srv/scope.img")), nullptr) << "scope-1 is still there";
    run(tracker.machine_gone("scope-1"));
    EXPECT_TRUE(reg.leases().empty());

    // Back: disks of machines still there are taken again, the service is started.
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = run(tracker.retry_failed());
    ASSERT_EQ(back.machine_effects.size(), 2u);
    EXPECT_EQ(back.machine_effects[0].kind, MachineEffect::Kind::StartUnit);
    EXPECT_EQ(back.machine_effects[0].unit, "qemu-svc.service");
    // The paused machine's disks are held again at their versions: it goes on.
    EXPECT_EQ(back.machine_effects[1].kind, MachineEffect::Kind::Kill);
    EXPECT_EQ(back.machine_effects[1].machine, "db-1");
    EXPECT_EQ(back.machine_effects[1].signal, SIGCONT);
    ASSERT_EQ(back.resumed.size(), 1u);
    EXPECT_NE(reg.find(lease_resource_name("/srv/keep.img")), nullptr);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/api.img")), nullptr);  // not a machine: the caller takes it again
    EXPECT_TRUE(run(tracker.retry_failed()).machine_effects.empty());    // started once
}

}  // namespace

// --- restart: the state file and restore() ------------------------------------------

namespace {

size_t orphan_releases(const Step &s) {
    size_t n = 0;
    for (const auto &e : s.sanlock_effects)
        if (auto *r = std::get_if<ReleaseEffect>(&e); r && r->orphan)
            n++;
    return n;
}

}  // namespace

TEST(SavedStateFile, RoundTripsEveryKindOfOwnerAndOddDiskNames) {
    SavedState s;
    s.owners = {{"db-1", SavedOwner::Kind::Machine, 0},
                {"vm-2", SavedOwner::Kind::Reserved, 1763700000},
                {"backup@host", SavedOwner::Kind::Api, 0}};
    s.leases = {{lease_resource_name("/srv/a b.img"), "/srv/a b.img", LeaseMode::Exclusive, {"db-1"}},
                {lease_resource_name("/srv/x\\y\nz"), "/srv/x\\y\nz", LeaseMode::Shared, {"vm-2", "backup@host"}},
                {lease_resource_name("/srv/gone"), "/srv/gone", LeaseMode::Exclusive, {}}};
    std::string error;
    auto back = parse_saved_state(format_saved_state(s), error);
    ASSERT_TRUE(back) << error;
    ASSERT_EQ(back->owners.size(), 3u);
    EXPECT_EQ(back->owner("vm-2")->kind, SavedOwner::Kind::Reserved);
    EXPECT_EQ(back->owner("vm-2")->reserved_until, 1763700000u);
    EXPECT_EQ(back->owner("backup@host")->kind, SavedOwner::Kind::Api);
    ASSERT_EQ(back->leases.size(), 3u);
    EXPECT_EQ(back->leases[0].disk, "/srv/a b.img");
    EXPECT_EQ(back->leases[1].disk, "/srv/x\\y\nz");
    EXPECT_EQ(back->leases[1].mode, LeaseMode::Shared);
    EXPECT_EQ(back->leases[1].owners, (std::vector<std::string>{"vm-2", "backup@host"}));
    EXPECT_TRUE(back->leases[2].owners.empty());
}

TEST(SavedStateFile, ACorruptFileIsRejectedWithTheLine) {
    std::string error;
    EXPECT_FALSE(parse_saved_state("", error));
    EXPECT_NE(error.find("line 1"), std::string::npos) << error;
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\nowner machine db-1\nlease nothex exclusive db-1 /x\n", error));
    EXPECT_NE(error.find("line 3"), std::string::npos) << error;
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\nlease " + lease_resource_name("/x") + " exclusive db-1\n", error));
    EXPECT_NE(error.find("no disk"), std::string::npos) << error;
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\nowner wizard x\n", error));
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\nlease " + lease_resource_name("/x") + " sideways - /x\n", error));
    EXPECT_NE(error.find("mode"), std::string::npos) << error;
}

TEST_F(Tracker, ASnapshotNamesEveryOwnerAndWhatKindItIs) {
    run(tracker.machine_appeared(vm("db-1")));
    run(reg.acquire(7, "backup", "/srv/backup.img", lease_resource_name("/srv/backup.img"), LeaseMode::Exclusive));
    run(tracker.reserve(8, "later", {{"/srv/later.img", LeaseMode::Exclusive}}, 60));
    SavedState s = tracker.snapshot({{"later", 1000}}, 900);
    ASSERT_EQ(s.leases.size(), 4u);
    EXPECT_EQ(s.owner("db-1")->kind, SavedOwner::Kind::Machine);
    EXPECT_EQ(s.owner("backup")->kind, SavedOwner::Kind::Api);
    EXPECT_EQ(s.owner("later")->kind, SavedOwner::Kind::Reserved);
    EXPECT_EQ(s.owner("later")->reserved_until, 1000u);
    // An acquire still with sanlock is remembered too: a crash right after
    // sanlock grants it must not leave a lease nobody can attribute.
    Step pending = reg.acquire(9, "slow", "/srv/slow.img", lease_resource_name("/srv/slow.img"), LeaseMode::Exclusive);
    ASSERT_EQ(pending.sanlock_effects.size(), 1u);
    s = tracker.snapshot({}, 900);
    ASSERT_NE(s.owner("slow"), nullptr);
    // Without a running grace timer (the daemon's), the default grace from now.
    EXPECT_EQ(s.owner("later")->reserved_until, 900u + kDefaultGraceSeconds);
}

TEST_F(Tracker, RestoreAdoptsRunningMachinesRestoresOwnersAndReleasesTheRest) {
    SavedState saved;
    saved.owners = {{"db-1", SavedOwner::Kind::Machine, 0},      {"ended", SavedOwner::Kind::Machine, 0},
                    {"backup", SavedOwner::Kind::Api, 0},        {"soon", SavedOwner::Kind::Reserved, 2000},
                    {"expired", SavedOwner::Kind::Reserved, 500}};
    auto lease = [](const std::string &disk, std::vector<std::string> owners) {
        return SavedLease{lease_resource_name(disk), disk, LeaseMode::Exclusive, std::move(owners)};
    };
    saved.leases = {lease("/srv/given.img", {"db-1"}),   lease("/srv/ended.img", {"ended"}),
                    lease("/srv/backup.img", {"backup"}), lease("/srv/soon.img", {"soon"}),
                    lease("/srv/expired.img", {"expired"}), lease("/srv/releasing.img", {})};
    run(tracker.machine_appeared(vm("db-1")));

    Step s = tracker.restore(saved, 1000);
    EXPECT_EQ(orphan_releases(s), 3u);  // ended, expired, releasing
    run(std::move(s));
    const Machine *db = tracker.find("db-1");
    ASSERT_NE(db, nullptr);
    auto given = std::find_if(db->disks.begin(), db->disks.end(),
                              [](const MachineDisk &d) { return d.disk == "/srv/given.img"; });
    ASSERT_NE(given, db->disks.end());
    EXPECT_EQ(given->source, MachineDisk::Source::Restored);
    EXPECT_EQ(given->state, MachineDisk::State::Held);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/backup.img"))->owners, std::vector<std::string>{"backup"});
    ASSERT_NE(tracker.find("soon"), nullptr);
    EXPECT_TRUE(tracker.find("soon")->reserved);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/soon.img"))->owners, std::vector<std::string>{"soon"});
    for (const char *gone : {"/srv/ended.img", "/srv/expired.img", "/srv/releasing.img"})
        EXPECT_EQ(reg.find(lease_resource_name(gone)), nullptr) << gone;
    EXPECT_EQ(tracker.find("expired"), nullptr);
}

TEST_F(Tracker, AnOrphanSomeoneWantsAgainIsAdoptedNotReleased) {
    SavedState saved;
    saved.owners = {{"ended", SavedOwner::Kind::Machine, 0}};
    saved.leases = {{lease_resource_name("/dev/disk/by-path/lun-1"), "/dev/disk/by-path/lun-1", LeaseMode::Exclusive,
                     {"ended"}}};
    run(tracker.machine_appeared(vm("db-2")));  // its rule names lun-1
    Step s = tracker.restore(saved, 1000);
    EXPECT_EQ(orphan_releases(s), 0u);
    EXPECT_EQ(reg.find(lease_resource_name("/dev/disk/by-path/lun-1"))->owners, std::vector<std::string>{"db-2"});
}

TEST_F(Tracker, WithoutMachinedMachinesLeasesAreKeptForLater) {
    SavedState saved;
    saved.owners = {{"db-1", SavedOwner::Kind::Machine, 0}, {"backup", SavedOwner::Kind::Api, 0}};
    saved.leases = {{lease_resource_name("/srv/m.img"), "/srv/m.img", LeaseMode::Exclusive, {"db-1"}},
                    {lease_resource_name("/srv/b.img"), "/srv/b.img", LeaseMode::Exclusive, {"backup"}}};
    SavedState deferred;
    Step s = run(tracker.restore(saved, 1000, &deferred));
    EXPECT_EQ(orphan_releases(s), 0u);
    ASSERT_EQ(deferred.leases.size(), 1u);
    EXPECT_EQ(deferred.leases[0].disk, "/srv/m.img");
    ASSERT_NE(deferred.owner("db-1"), nullptr);
    EXPECT_NE(reg.find(lease_resource_name("/srv/b.img")), nullptr);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/m.img")), nullptr);
    // machined answers later, without db-1: now it is released.
    Step later = tracker.restore(deferred, 1000);
    EXPECT_EQ(orphan_releases(later), 1u);
}

TEST_F(Tracker, WhenSanlockStopsEveryLeaseIsGoneAndTakenAgainAfterTheRejoin) {
    run(tracker.machine_appeared(vm("db-1")));
    ASSERT_EQ(reg.leases().size(), 2u);
    Step lost = tracker.sanlock_lost();
    EXPECT_EQ(lost.lease_changes.size(), 2u);
    EXPECT_TRUE(lost.sanlock_effects.empty()) << "nothing is left in sanlock to release";
    EXPECT_TRUE(reg.leases().empty());
    for (const auto &d : tracker.find("db-1")->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Failed);
    Step again = run(tracker.retry_failed());
    EXPECT_EQ(reg.leases().size(), 2u);
    Step conflict = tracker.sanlock_lost();
    Step retried = run(tracker.retry_failed(), -243, {2});
    EXPECT_EQ(retried.conflicts.size(), 2u);
    ASSERT_EQ(retried.machine_effects.size(), 1u);
    EXPECT_EQ(retried.machine_effects[0].kind, MachineEffect::Kind::Terminate);
}

namespace {

bool adopts(const Step &s) {
    for (const auto &e : s.sanlock_effects)
        if (auto *a = std::get_if<AcquireEffect>(&e); a && !a->adopt_orphan)
            return false;
    return !s.sanlock_effects.empty();
}

}  // namespace

// Orphans of this host (an earlier vmleased's leases) may be taken over for
// a machine whose rules or discovery name the disk, or for what the state
// file restores; never for a RegisterMachine caller.
TEST_F(Tracker, OnlyMachinesOwnDisksMayTakeOverOrphans) {
    EXPECT_TRUE(adopts(tracker.machine_appeared(vm("db-1"))));
    EXPECT_TRUE(adopts(tracker.files_discovered("db-1", {{"/var/lib/libvirt/images/db.img", true}})));
    EXPECT_FALSE(adopts(tracker.reserve(77, "vm9", {{"/srv/a.img", LeaseMode::Exclusive}}, 60)));
    EXPECT_TRUE(adopts(tracker.reserve(78, "vm8", {{"/srv/b.img", LeaseMode::Exclusive}}, 60, true)));
}

// RegisterMachine of a running VM's disk after an agent restart: sanlock
// says -EUCLEAN (an orphan of this host); the reservation fails, naming this
// host, and nothing is terminated.
TEST_F(Tracker, AReservationCannotTakeOverAnOrphan) {
    Step s = run(tracker.reserve(77, "vm9", {{"/srv/a.img", LeaseMode::Exclusive}}, 60), -EUCLEAN);
    const Reply *r = reply_for(s, 77);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->error);
    EXPECT_EQ(kind_of(*r), ErrorKind::LeaseHeld);
    EXPECT_TRUE(s.machine_effects.empty());
    EXPECT_TRUE(reg.leases().empty());
}

// After a restart an intruder's AcquireDisk of a running machine's disk is
// with sanlock when the machine's own rule asks for it: the machine waits
// for sanlock's answer instead of meeting a conflict, and takes its orphan
// over; the intruder is refused.
TEST_F(Tracker, APendingIntruderDoesNotGetTheOrphansOwnerTerminated) {
    const std::string lun = "/dev/disk/by-path/lun-1", res = lease_resource_name(lun);
    Step intruder = reg.acquire(5, "intruder", lun, res, LeaseMode::Exclusive);
    ASSERT_EQ(intruder.sanlock_effects.size(), 1u);
    Step s = tracker.machine_appeared(vm("db-1"));
    EXPECT_TRUE(s.machine_effects.empty());
    Step answered = run(reg.acquire_done(res, {-EUCLEAN, {}, ""}));
    const Reply *refused = reply_for(answered, 5);
    ASSERT_NE(refused, nullptr);
    ASSERT_TRUE(refused->error);
    EXPECT_EQ(kind_of(*refused), ErrorKind::LeaseHeld);
    EXPECT_TRUE(answered.machine_effects.empty());
    ASSERT_NE(reg.find(res), nullptr);
    EXPECT_EQ(reg.find(res)->owners, std::vector<std::string>{"db-1"});
}

// --- never unprotected: retry with back-off, on_conflict pause, on_unprotected ---

TEST(RetryDelay, DoublesFromOneSecondToThirty) {
    EXPECT_EQ(retry_delay_ms(1), 1000u);
    EXPECT_EQ(retry_delay_ms(2), 2000u);
    EXPECT_EQ(retry_delay_ms(5), 16000u);
    EXPECT_EQ(retry_delay_ms(6), 30000u);
    EXPECT_EQ(retry_delay_ms(1000), 30000u);
}

TEST_F(Tracker, AFailedAcquireIsRetriedWithBackOffAndNobodyElseGetsTheDiskMeanwhile) {
    run(tracker.machine_appeared(vm("web-1")));
    const std::string disk = "/var/lib/libvirt/images/web.img";
    // sanlock refuses the lease file (e.g. a bad header).
    Step s = run(tracker.files_discovered("web-1", {{disk, true}}), -22);
    const Machine *m = tracker.find("web-1");
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Failed);
    EXPECT_FALSE(machine_protected(*m));
    EXPECT_EQ(machine_state(*m), "unprotected");
    ASSERT_EQ(s.retry_timers.size(), 1u);
    EXPECT_EQ(s.retry_timers[0].delay_ms, 1000u);
    ASSERT_EQ(s.unprotected.size(), 1u);  // announced once
    EXPECT_EQ(s.unprotected[0].action, "");
    ASSERT_EQ(s.protection_timers.size(), 1u);
    EXPECT_EQ(s.protection_timers[0].seconds, 60u);

    // Another owner on this host is refused the disk the VM is writing.
    Step other = reg.acquire(7, "intruder", disk, lease_resource_name(disk), LeaseMode::Exclusive);
    ASSERT_EQ(other.replies.size(), 1u);
    ASSERT_TRUE(other.replies[0].error);
    EXPECT_EQ(kind_of(other.replies[0]), ErrorKind::LeaseHeld);
    EXPECT_TRUE(other.sanlock_effects.empty());

    // Still failing: the next delay doubles, and nothing is announced again.
    Step again = run(tracker.retry("web-1", disk, s.retry_timers[0].token), -22);
    ASSERT_EQ(again.retry_timers.size(), 1u);
    EXPECT_EQ(again.retry_timers[0].delay_ms, 2000u);
    EXPECT_TRUE(again.unprotected.empty());
    EXPECT_TRUE(again.protection_timers.empty());  // the same stretch
    // A stale timer does nothing.
    EXPECT_TRUE(tracker.retry("web-1", disk, s.retry_timers[0].token).sanlock_effects.empty());

    // Repaired: held, protected, the stretch over (its timer then does nothing).
    run(tracker.retry("web-1", disk, again.retry_timers[0].token));
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Held);
    EXPECT_TRUE(machine_protected(*m));
    EXPECT_FALSE(m->exposed);
    Step late = tracker.grace_over("web-1", s.protection_timers[0].epoch);
    EXPECT_TRUE(late.machine_effects.empty());
    EXPECT_TRUE(late.unprotected.empty());
}

TEST_F(Tracker, WithoutTheLockspaceADiskIsTakenAtTheRejoinAndItsGraceRuns) {
    run(tracker.machine_appeared(vm("web-1")));
    reg.set_lockspace_state(LockspaceState::Failed);
    Step s = run(tracker.files_discovered("web-1", {{"/var/lib/libvirt/images/web.img", true}}));
    const Machine *m = tracker.find("web-1");
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Failed);
    EXPECT_TRUE(s.retry_timers.empty());  // the rejoin takes it
    // No on_lockfailure was applied to it (it held nothing): on_unprotected's grace runs.
    EXPECT_FALSE(m->disks[0].awaits_lockspace);
    EXPECT_EQ(s.protection_timers.size(), 1u);
    EXPECT_TRUE(m->exposed);
    EXPECT_FALSE(machine_protected(*m));
    reg.set_lockspace_state(LockspaceState::Joined);
    run(tracker.retry_failed());
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Held);
    EXPECT_FALSE(m->exposed);
}

TEST_F(Tracker, AMachinePausedOrIgnoredOnALockFailureIsLeftToOnLockfailure) {
    config.on_lockfailure = LockFailureAction::Ignore;
    run(tracker.machine_appeared(vm("web-1")));
    run(tracker.files_discovered("web-1", {{"/var/lib/libvirt/images/web.img", true}}));
    reg.set_lockspace_state(LockspaceState::Failed);
    Step s = run(tracker.lock_failed());
    const Machine *m = tracker.find("web-1");
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Failed);
    EXPECT_TRUE(m->disks[0].awaits_lockspace);
    EXPECT_FALSE(m->exposed);
    EXPECT_TRUE(s.protection_timers.empty());
}

TEST_F(Tracker, AStaleLockspaceAnswerAfterTheRejoinIsRetriedLikeAnyFailure) {
    run(tracker.machine_appeared(vm("web-1")));
    const std::string disk = "/var/lib/libvirt/images/web.img";
    Step ask = tracker.files_discovered("web-1", {{disk, true}});
    // sanlock answers "lockspace not joined" (-ENOSPC) though the registry
    // is joined again: the disk must not wait for a rejoin that happened.
    Step s = run(std::move(ask), -ENOSPC);
    const Machine *m = tracker.find("web-1");
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Failed);
    EXPECT_EQ(s.retry_timers.size(), 1u);
}

TEST_F(Tracker, UnderWarnAConflictIsRetriedUntilTheHolderLetsGo) {
    config.on_conflict = ConflictAction::Warn;
    Step s = run(tracker.machine_appeared(vm("db-1")), -243, {2});
    const Machine *m = tracker.find("db-1");
    EXPECT_FALSE(m->terminating);
    EXPECT_TRUE(s.machine_effects.empty());
    EXPECT_EQ(s.retry_timers.size(), 2u);  // both disks
    for (const auto &t : s.retry_timers)
        run(tracker.retry("db-1", t.disk, t.token));
    for (const auto &d : m->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Held) << d.disk;
    EXPECT_TRUE(machine_protected(*m));
}

TEST_F(Tracker, UnderPauseAConflictFreezesTheMachineUntilTheLeaseIsGranted) {
    config.on_conflict = ConflictAction::Pause;
    Step s = run(tracker.machine_appeared(vm("db-1")), -243, {2});
    const Machine *m = tracker.find("db-1");
    ASSERT_EQ(s.machine_effects.size(), 1u);  // once, though two disks conflict
    EXPECT_EQ(s.machine_effects[0].kind, MachineEffect::Kind::Freeze);
    EXPECT_EQ(s.machine_effects[0].unit, "machine-db-1.scope");
    EXPECT_TRUE(m->frozen);
    EXPECT_EQ(machine_state(*m), "frozen");
    // One disk free: still frozen.
    Step first = run(tracker.retry("db-1", s.retry_timers[0].disk, s.retry_timers[0].token));
    EXPECT_TRUE(first.machine_effects.empty());
    Step second = run(tracker.retry("db-1", s.retry_timers[1].disk, s.retry_timers[1].token));
    ASSERT_EQ(second.machine_effects.size(), 1u);
    EXPECT_EQ(second.machine_effects[0].kind, MachineEffect::Kind::Thaw);
    EXPECT_EQ(second.resumed.size(), 1u);
    EXPECT_FALSE(m->frozen);
    // It never held them before: nothing was pinned.
    for (const auto &d : m->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Held);
}

TEST_F(Tracker, OnUnprotectedAppliesOnceTheGraceIsOverAndEachActionDoesWhatItSays) {
    const std::string disk = "/var/lib/libvirt/images/web.img";
    for (auto action : {UnprotectedAction::Terminate, UnprotectedAction::Pause, UnprotectedAction::Warn}) {
        config.on_unprotected = action;
        config.unprotected_grace = 5;
        std::string name = std::string("vm-") + to_string(action);
        run(tracker.machine_appeared(vm(name)));
        Step s = run(tracker.files_discovered(name, {{disk, true}}), -22);
        ASSERT_EQ(s.protection_timers.size(), 1u);
        EXPECT_EQ(s.protection_timers[0].seconds, 5u);
        Step over = tracker.grace_over(name, s.protection_timers[0].epoch);
        ASSERT_EQ(over.unprotected.size(), 1u) << name;
        EXPECT_EQ(over.unprotected[0].action, to_string(action));
        EXPECT_EQ(over.unprotected[0].disk, disk);
        const Machine *m = tracker.find(name);
        switch (action) {
        case UnprotectedAction::Terminate:
            ASSERT_EQ(over.machine_effects.size(), 1u);
            EXPECT_EQ(over.machine_effects[0].kind, MachineEffect::Kind::Terminate);
            EXPECT_TRUE(m->terminating);
            break;
        case UnprotectedAction::Pause:
            ASSERT_EQ(over.machine_effects.size(), 1u);
            EXPECT_EQ(over.machine_effects[0].kind, MachineEffect::Kind::Freeze);
            break;
        case UnprotectedAction::Warn: EXPECT_TRUE(over.machine_effects.empty()); break;
        }
        // Once per stretch.
        EXPECT_TRUE(tracker.grace_over(name, s.protection_timers[0].epoch).unprotected.empty());
        run(tracker.machine_gone(name));
    }
}

TEST_F(Tracker, ReleasedByAnAdministratorStaysReleasedAndIsNotRetried) {
    run(tracker.machine_appeared(vm("web-1")));
    const std::string disk = "/var/lib/libvirt/images/web.img";
    Step s = run(tracker.files_discovered("web-1", {{disk, true}}), -22);
    ASSERT_EQ(s.retry_timers.size(), 1u);
    Step rel = run(tracker.release_leases(99, "web-1"));
    const Machine *m = tracker.find("web-1");
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Released);
    EXPECT_FALSE(machine_protected(*m));
    EXPECT_FALSE(m->exposed);  // the administrator's choice: no on_unprotected
    EXPECT_TRUE(tracker.retry("web-1", disk, s.retry_timers[0].token).sanlock_effects.empty());
    // And the disk is no longer claimed.
    Step other = reg.acquire(7, "other", disk, lease_resource_name(disk), LeaseMode::Exclusive);
    EXPECT_TRUE(other.replies.empty());
    EXPECT_EQ(other.sanlock_effects.size(), 1u);
}

TEST_F(Tracker, AnotherMachineUnderTheSameNameStartsAfresh) {
    config.on_conflict = ConflictAction::Terminate;
    run(tracker.machine_appeared(vm("db-1")), -243, {2});
    ASSERT_TRUE(tracker.find("db-1")->terminating);
    // machined already has a new db-1 (its service restarted) when we look.
    MachineInfo again = vm("db-1");
    again.leader = 5151;
    Step s = run(tracker.machine_appeared(again));
    const Machine *m = tracker.find("db-1");
    EXPECT_FALSE(m->terminating);
    EXPECT_EQ(m->info.leader, 5151u);
    for (const auto &d : m->disks)
        EXPECT_EQ(d.state, MachineDisk::State::Held) << d.disk;  // asked for again
}

TEST_F(Tracker, AFrozenMachineWhoseGraceEndsIsKilledNotStopped) {
    config.on_conflict = ConflictAction::Pause;
    config.unprotected_grace = 5;
    Step s = run(tracker.machine_appeared(vm("db-1")), -243, {2});
    ASSERT_TRUE(tracker.find("db-1")->frozen);
    ASSERT_EQ(s.protection_timers.size(), 1u);
    Step over = tracker.grace_over("db-1", s.protection_timers[0].epoch);
    ASSERT_EQ(over.machine_effects.size(), 1u);
    EXPECT_EQ(over.machine_effects[0].kind, MachineEffect::Kind::Kill);
    EXPECT_EQ(over.machine_effects[0].signal, SIGKILL);
}

TEST_F(Tracker, TwoMachinesHereWantingOneDiskDoNotRefuseEachOtherForGood) {
    config.on_conflict = ConflictAction::Warn;
    const std::string disk = "/var/lib/libvirt/images/web.img";
    run(tracker.machine_appeared(vm("a")));
    run(tracker.machine_appeared(vm("b")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.files_discovered("a", {{disk, true}}));
    run(tracker.files_discovered("b", {{disk, true}}));
    reg.set_lockspace_state(LockspaceState::Joined);
    run(tracker.retry_failed());
    EXPECT_EQ(tracker.find("a")->disks[0].state, MachineDisk::State::Held);  // the first claimant
    EXPECT_EQ(tracker.find("b")->disks[0].state, MachineDisk::State::Conflict);
}

TEST_F(Tracker, ReleaseDiskOfAMachinesDiskMarksItReleased) {
    run(tracker.machine_appeared(vm("web-1")));
    const std::string disk = "/var/lib/libvirt/images/web.img";
    run(tracker.files_discovered("web-1", {{disk, true}}));
    Step s = run(tracker.release_disk(5, "web-1", lease_resource_name(disk)));
    ASSERT_NE(reply_for(s, 5), nullptr);
    EXPECT_FALSE(reply_for(s, 5)->error);
    const Machine *m = tracker.find("web-1");
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Released);
    EXPECT_FALSE(machine_protected(*m));
    ASSERT_EQ(s.unprotected.size(), 1u);
    EXPECT_EQ(s.unprotected[0].reason.rfind("released", 0), 0u);
}

TEST_F(Tracker, AReservationRefusedAfterItsMachineStartedKeepsAndRetriesItsDisks) {
    config.on_conflict = ConflictAction::Warn;
    const std::string disk = "/srv/a.img";
    Step r = tracker.reserve(9, "vm-r", {{disk, LeaseMode::Exclusive}}, 60);
    // The VM was started before sanlock answered.
    run(tracker.machine_appeared(vm("vm-r")));
    Step s = run(std::move(r), -243, {2});
    const Reply *reply = reply_for(s, 9);
    ASSERT_NE(reply, nullptr);
    ASSERT_TRUE(reply->error);
    const Machine *m = tracker.find("vm-r");
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Conflict);
    EXPECT_EQ(s.retry_timers.size(), 1u);
}

TEST_F(Tracker, ALockFailureDoesNotHandTheDiskToTheMachineThatWasRefusedIt) {
    config.on_lockfailure = LockFailureAction::Ignore;
    config.on_conflict = ConflictAction::Pause;
    const std::string disk = "/var/lib/libvirt/images/web.img";
    run(tracker.machine_appeared(vm("zeta")));
    run(tracker.files_discovered("zeta", {{disk, true}}));
    run(tracker.machine_appeared(vm("alpha")));
    run(tracker.files_discovered("alpha", {{disk, true}}));  // refused: zeta holds it here
    ASSERT_EQ(tracker.find("alpha")->disks[0].state, MachineDisk::State::Conflict);
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    reg.set_lockspace_state(LockspaceState::Joined);
    run(tracker.retry_failed());
    EXPECT_EQ(tracker.find("zeta")->disks[0].state, MachineDisk::State::Held);
    EXPECT_NE(tracker.find("alpha")->disks[0].state, MachineDisk::State::Held);
}

TEST_F(Tracker, EveryStopOfAFrozenMachineIsAKill) {
    config.on_unprotected = UnprotectedAction::Pause;
    config.unprotected_grace = 0;
    const std::string disk = "/var/lib/libvirt/images/web.img";
    run(tracker.machine_appeared(vm("web-1")));
    Step s = run(tracker.files_discovered("web-1", {{disk, true}}), -22);
    ASSERT_EQ(s.protection_timers.size(), 1u);
    run(tracker.grace_over("web-1", s.protection_timers[0].epoch));
    ASSERT_TRUE(tracker.find("web-1")->frozen);
    ASSERT_FALSE(s.retry_timers.empty());
    // The retry meets another host's lease: on_conflict terminate, as a kill.
    Step c = run(tracker.retry("web-1", disk, s.retry_timers[0].token), -243, {2});
    ASSERT_EQ(c.machine_effects.size(), 1u);
    EXPECT_EQ(c.machine_effects[0].kind, MachineEffect::Kind::Kill);
    EXPECT_EQ(c.machine_effects[0].signal, SIGKILL);
}

TEST_F(Tracker, AReservationDiskRefusedBeforeItsMachineStartedIsAskedForAgainOnceItRuns) {
    const std::string a = "/srv/a.img", b = "/srv/b.img";
    Step r = tracker.reserve(9, "vm-r", {{a, LeaseMode::Exclusive}, {b, LeaseMode::Exclusive}}, 60);
    // a is refused while it is still reserved; b's answer is still out.
    ASSERT_EQ(r.sanlock_effects.size(), 2u);
    Step fa = reg.acquire_done(std::get<AcquireEffect>(r.sanlock_effects[0]).resource, {-22, {}, ""});
    for (const auto &rep : fa.replies)
        run(tracker.lease_reply(rep));
    Step started = run(tracker.machine_appeared(vm("vm-r")));
    EXPECT_EQ(started.retry_timers.size(), 1u);
    EXPECT_EQ(tracker.find("vm-r")->disks.size(), 2u);
}

// --- disk identity: aliases, disks with no identity, identity: path ----------

TEST_F(Tracker, ADiskWithNoIdentityLeavesItsMachineUnprotectedAndOnUnprotectedActs) {
    config.discovery.include = {"/dev/*"};
    config.on_unprotected = UnprotectedAction::Terminate;
    config.unprotected_grace = 5;
    run(tracker.machine_appeared(vm("web-1")));
    OpenFile f{"/dev/sdx", true};
    f.name = DiskName{DiskName::Kind::Unidentified, "block device /dev/sdx has no stable identity"};
    Step s = run(tracker.files_discovered("web-1", {f}));
    EXPECT_TRUE(s.sanlock_effects.empty());  // no lease can protect it
    const Machine *m = tracker.find("web-1");
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Unidentified);
    EXPECT_FALSE(machine_protected(*m));
    EXPECT_EQ(machine_state(*m), "unprotected");
    ASSERT_EQ(s.unprotected.size(), 1u);
    EXPECT_NE(s.unprotected[0].reason.find("no stable identity"), std::string::npos) << s.unprotected[0].reason;
    ASSERT_EQ(s.protection_timers.size(), 1u);
    Step over = tracker.grace_over("web-1", s.protection_timers[0].epoch);
    ASSERT_EQ(over.machine_effects.size(), 1u);
    EXPECT_EQ(over.machine_effects[0].kind, MachineEffect::Kind::Terminate);
}

TEST_F(Tracker, DiscoveryTakesTheAliasesTheVmWasGivenAndMatchesAnyOfItsNames) {
    run(tracker.machine_appeared(vm("web-1")));
    // The images directory is a symlink: the VM opened /srv/images/web.img,
    // qemu was told /var/lib/libvirt/images/web.img.
    OpenFile f{"/srv/images/web.img", true};
    f.name = DiskName{DiskName::Kind::Canonical, "/srv/images/web.img", {"/var/lib/libvirt/images/web.img"}};
    Step s = run(tracker.files_discovered("web-1", {f}));
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    auto &a = std::get<AcquireEffect>(s.sanlock_effects[0]);
    EXPECT_EQ(a.resource, lease_resource_name("/srv/images/web.img"));
    EXPECT_EQ(a.alias_resources, std::vector<std::string>{lease_resource_name("/var/lib/libvirt/images/web.img")});

    // Without the alias, the include pattern resolved through the symlink matches.
    run(tracker.machine_appeared(vm("web-2")));
    OpenFile g{"/srv/images/two.img", true};
    g.name = DiskName{DiskName::Kind::Canonical, "/srv/images/two.img"};
    EXPECT_TRUE(run(tracker.files_discovered("web-2", {g})).sanlock_effects.empty());
    ResolvedPatterns resolved{{"/srv/images/*"}, {}};
    EXPECT_EQ(run(tracker.files_discovered("web-2", {g}, resolved)).sanlock_effects.size(), 1u);
    // And the resolved exclude pattern excludes.
    run(tracker.machine_appeared(vm("web-3")));
    OpenFile h{"/srv/images/tmp-3.img", true};
    h.name = DiskName{DiskName::Kind::Canonical, "/srv/images/tmp-3.img"};
    EXPECT_TRUE(run(tracker.files_discovered("web-3", {h}, {{"/srv/images/*"}, {"/srv/images/tmp-*"}})).sanlock_effects.empty());
    // A block device matches through its links.
    config.discovery.include = {"/dev/disk/by-path/*"};
    OpenFile d{"/dev/sdc", true};
    d.name = DiskName{DiskName::Kind::Canonical, "/dev/disk/by-id/wwn-0x5000c5000000000a"};
    d.names = {"/dev/sdc", "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:2:0"};
    EXPECT_EQ(run(tracker.files_discovered("web-3", {d})).sanlock_effects.size(), 1u);
}

TEST_F(Tracker, ARuleWithIdentityPathIsNamedAsWritten) {
    struct Refusing final : DiskNamer {
        DiskName canonical(const std::string &p) const override { return {DiskName::Kind::Unidentified, "no id " + p}; }
    } refusing;
    MachineRule rule;
    rule.match = "raw-*";
    rule.disks = {{"/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:3:0", LeaseMode::Exclusive, true},
                  {"/dev/sdq", LeaseMode::Exclusive}};
    config.machines = {rule};
    MachineTracker devices(reg, config, refusing);
    Step s = devices.machine_appeared(vm("raw-1"));
    const Machine *m = devices.find("raw-1");
    ASSERT_EQ(m->disks.size(), 2u);
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Acquiring);
    ASSERT_EQ(s.sanlock_effects.size(), 1u);
    EXPECT_EQ(std::get<AcquireEffect>(s.sanlock_effects[0]).resource,
              lease_resource_name("/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:3:0"));
    EXPECT_EQ(m->disks[1].state, MachineDisk::State::Unidentified);
    EXPECT_EQ(m->disks[1].error, "no id /dev/sdq");
}

TEST_F(Tracker, ADeviceARuleNamesByPathIsNotUnprotectedWhenTheVmOpensIt) {
    struct Refusing final : DiskNamer {
        DiskName canonical(const std::string &p) const override { return {DiskName::Kind::Unidentified, "no id " + p}; }
    } refusing;
    const std::string by_path = "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:3:0";
    MachineRule rule;
    rule.match = "raw-*";
    rule.disks = {{by_path, LeaseMode::Exclusive, true}};
    config.machines = {rule};
    config.discovery.include = {"/dev/disk/by-path/*"};
    MachineTracker devices(reg, config, refusing);
    devices.machine_appeared(vm("raw-1"));
    OpenFile f{"/dev/sdq", true};
    f.name = DiskName{DiskName::Kind::Unidentified, "no id /dev/sdq"};
    f.names = {"/dev/sdq", by_path};
    devices.files_discovered("raw-1", {f});
    const Machine *m = devices.find("raw-1");
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].disk, by_path);
    EXPECT_NE(m->disks[0].state, MachineDisk::State::Unidentified);
}

TEST_F(Tracker, ARuleDiskThatCannotBeLookedUpIsUnprotectedAndLookedUpAgain) {
    struct Flaky final : DiskNamer {
        mutable bool broken = true;
        DiskName canonical(const std::string &p) const override {
            if (broken)
                return {DiskName::Kind::Invalid, "cannot resolve " + p + ": Input/output error"};
            return {DiskName::Kind::Canonical, p};
        }
    } flaky;
    config.unprotected_grace = 5;
    MachineTracker t(reg, config, flaky);
    Step s = t.machine_appeared(vm("db-1"));
    const Machine *m = t.find("db-1");
    const MachineDisk *lun = nullptr;
    for (const auto &d : m->disks)
        if (d.disk == "/dev/disk/by-path/lun-1")
            lun = &d;
    ASSERT_NE(lun, nullptr) << "the rule's disk was dropped";
    EXPECT_EQ(lun->state, MachineDisk::State::Unidentified);
    EXPECT_NE(lun->error.find("Input/output error"), std::string::npos);
    EXPECT_FALSE(machine_protected(*m));
    ASSERT_FALSE(s.protection_timers.empty());
    const RetryTimer *timer = nullptr;
    for (const auto &r : s.retry_timers)
        if (r.disk == "/dev/disk/by-path/lun-1")
            timer = &r;
    ASSERT_NE(timer, nullptr);
    // Still broken: looked at again later each time, announced once.
    Step second = t.retry("db-1", timer->disk, timer->token);
    ASSERT_EQ(second.retry_timers.size(), 1u);
    EXPECT_GT(second.retry_timers[0].delay_ms, timer->delay_ms);
    EXPECT_TRUE(second.unprotected.empty());
    RetryTimer next = second.retry_timers[0];
    flaky.broken = false;
    Step again = t.retry("db-1", next.disk, next.token);
    ASSERT_EQ(again.sanlock_effects.size(), 1u);
    EXPECT_EQ(std::get<AcquireEffect>(again.sanlock_effects[0]).resource, lease_resource_name("/dev/disk/by-path/lun-1"));
}

TEST_F(Tracker, ADiscoveredDiskWithoutIdentityIsLookedAtAgainAtEveryScan) {
    config.discovery.include = {"/dev/*"};
    run(tracker.machine_appeared(vm("web-1")));
    OpenFile f{"/dev/sdx", true};
    f.name = DiskName{DiskName::Kind::Unidentified, "not in the udev database yet"};
    Step first = run(tracker.files_discovered("web-1", {f}));
    EXPECT_EQ(first.unprotected.size(), 1u);
    // Found again unchanged: not announced again.
    EXPECT_TRUE(run(tracker.files_discovered("web-1", {f})).unprotected.empty());
    // Named now (udev caught up): the lease is taken and nothing unidentified is left.
    f.name = DiskName{DiskName::Kind::Canonical, "/dev/disk/by-id/wwn-0x5000c5000000000a"};
    run(tracker.files_discovered("web-1", {f}));
    const Machine *m = tracker.find("web-1");
    ASSERT_EQ(m->disks.size(), 1u);
    EXPECT_EQ(m->disks[0].state, MachineDisk::State::Held);
    EXPECT_TRUE(machine_protected(*m));
}

TEST_F(Tracker, AMachinePausedForADiskWithoutIdentityStaysFrozen) {
    config.discovery.include = {"/dev/*"};
    config.on_unprotected = UnprotectedAction::Pause;
    config.unprotected_grace = 5;
    run(tracker.machine_appeared(vm("web-1")));
    OpenFile f{"/dev/sdx", true};
    f.name = DiskName{DiskName::Kind::Unidentified, "no stable identity"};
    Step s = run(tracker.files_discovered("web-1", {f}));
    ASSERT_EQ(s.protection_timers.size(), 1u);
    Step over = tracker.grace_over("web-1", s.protection_timers[0].epoch);
    ASSERT_EQ(over.machine_effects.size(), 1u);
    EXPECT_EQ(over.machine_effects[0].kind, MachineEffect::Kind::Freeze);
    EXPECT_TRUE(tracker.find("web-1")->frozen);
    // Later scans find it still unnamed: no thaw.
    for (int i = 0; i < 3; i++)
        for (const auto &e : run(tracker.files_discovered("web-1", {f})).machine_effects)
            EXPECT_NE(e.kind, MachineEffect::Kind::Thaw);
    EXPECT_TRUE(tracker.find("web-1")->frozen);
}

TEST_F(Tracker, ADiskWithoutIdentityIsForgottenOnlyAfterThreeScansMissIt) {
    config.discovery.include = {"/dev/*"};
    config.unprotected_grace = 5;
    run(tracker.machine_appeared(vm("web-1")));
    OpenFile f{"/dev/sdx", true};
    f.name = DiskName{DiskName::Kind::Unidentified, "no stable identity"};
    Step s = run(tracker.files_discovered("web-1", {f}));
    ASSERT_EQ(s.protection_timers.size(), 1u);
    uint64_t epoch = s.protection_timers[0].epoch;
    // One scan misses it (opened now and then): the grace goes on.
    run(tracker.files_discovered("web-1", {}));
    EXPECT_FALSE(machine_protected(*tracker.find("web-1")));
    EXPECT_TRUE(run(tracker.files_discovered("web-1", {f})).protection_timers.empty());
    EXPECT_EQ(tracker.find("web-1")->exposed_epoch, epoch);
    // Three in a row: it is gone.
    for (int i = 0; i < 3; i++)
        run(tracker.files_discovered("web-1", {}));
    EXPECT_TRUE(tracker.find("web-1")->disks.empty());
    EXPECT_TRUE(machine_protected(*tracker.find("web-1")));
}

// --- lease versions: a paused machine never resumes over another host's writes --------

namespace {
const std::string kLun = "/dev/disk/by-path/lun-1";
}  // namespace

TEST_F(Tracker, ALeaseTakenByAnotherHostWhileTheMachineWasPausedMakesItStaleForGood) {
    run(tracker.machine_appeared(vm("db-1")));
    const Machine *m = tracker.find("db-1");
    ASSERT_TRUE(machine_protected(*m));
    const std::string lun = lease_resource_name(kLun);
    EXPECT_EQ(m->disks[0].versions.at(lun).lver, 1u) << "the version it was granted is remembered";

    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    EXPECT_TRUE(m->stopped);
    // Meanwhile host 2 takes the disk, writes, lets go: a new version.
    lver[lun]++;
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = run(tracker.retry_failed());

    ASSERT_EQ(back.stale.size(), 1u);
    EXPECT_EQ(back.stale[0].machine, "db-1");
    EXPECT_EQ(back.stale[0].disk, kLun);
    const MachineDisk &d = m->disks[0];
    EXPECT_EQ(d.state, MachineDisk::State::Stale);
    EXPECT_EQ(machine_state(*m), "stale");
    EXPECT_FALSE(machine_protected(*m));
    // Never resumed, never asked for again, and its grace does not kill it.
    for (const auto &e : back.machine_effects)
        EXPECT_FALSE(e.kind == MachineEffect::Kind::Kill && e.signal == SIGCONT) << "resumed a stale machine";
    EXPECT_TRUE(back.resumed.empty());
    for (const auto &t : back.retry_timers)
        EXPECT_NE(t.disk, kLun);
    EXPECT_TRUE(m->stopped);
    EXPECT_FALSE(m->exposed);
    EXPECT_TRUE(run(tracker.retry_failed()).sanlock_effects.empty());
    EXPECT_EQ(reg.find(lun), nullptr) << "nothing took the stale disk's lease for it";

    // An admin's ResumeMachine is refused too.
    Step asked = run(tracker.resume(9, "db-1"));
    ASSERT_NE(reply_for(asked, 9), nullptr);
    EXPECT_EQ(kind_of(*reply_for(asked, 9)), ErrorKind::LeaseStale);
    EXPECT_TRUE(asked.machine_effects.empty());
}

TEST_F(Tracker, ASharedLeaseIsNotPinnedAnExclusiveOneIs) {
    run(tracker.machine_appeared(vm("db-1")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = tracker.retry_failed();
    std::map<std::string, LeaseVersions> pins;
    for (const auto &e : back.sanlock_effects)
        if (auto *a = std::get_if<AcquireEffect>(&e))
            pins[a->disk] = a->pins;
    ASSERT_EQ(pins.size(), 2u);
    EXPECT_EQ(pins[kLun], (LeaseVersions{{lease_resource_name(kLun), {1, 0}}}));
    // Every host that joins a shared lease makes a new version: no sign of a writer.
    EXPECT_TRUE(pins["/srv/shared.img"].empty());
}

TEST_F(Tracker, ResumeAfterLockfailureOffLeavesItPausedUntilResumeMachine) {
    config.resume_after_lockfailure = false;
    config.machines[0].resume_after_lockfailure = std::nullopt;
    run(tracker.machine_appeared(vm("db-1")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = run(tracker.retry_failed());
    const Machine *m = tracker.find("db-1");
    EXPECT_TRUE(machine_protected(*m)) << "its leases are back";
    EXPECT_TRUE(back.resumed.empty());
    EXPECT_TRUE(m->stopped);

    Step asked = run(tracker.resume(9, "db-1"));
    ASSERT_NE(reply_for(asked, 9), nullptr);
    EXPECT_FALSE(reply_for(asked, 9)->error) << reply_for(asked, 9)->error->message;
    ASSERT_EQ(asked.machine_effects.size(), 1u);
    EXPECT_EQ(asked.machine_effects[0].signal, SIGCONT);
    ASSERT_EQ(asked.resumed.size(), 1u);
    EXPECT_FALSE(m->stopped);
}

TEST_F(Tracker, ResumeMachineTakesBackWhatIsMissingAtItsVersionBeforeAnswering) {
    config.machines[0].on_lockfailure = LockFailureAction::Ignore;
    run(tracker.machine_appeared(vm("db-1")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    reg.set_lockspace_state(LockspaceState::Joined);
    // Asked before the disks were retried: the answer waits for them.
    Step asked = tracker.resume(9, "db-1");
    EXPECT_EQ(reply_for(asked, 9), nullptr);
    size_t pinned = 0;
    for (const auto &e : asked.sanlock_effects)
        if (auto *a = std::get_if<AcquireEffect>(&e))
            pinned += a->pins.size();
    EXPECT_EQ(pinned, 1u);
    Step done = run(std::move(asked));
    ASSERT_NE(reply_for(done, 9), nullptr);
    EXPECT_FALSE(reply_for(done, 9)->error);
    EXPECT_EQ(done.resumed.size(), 1u);
    // Unknown machines are refused.
    EXPECT_EQ(kind_of(*reply_for(run(tracker.resume(10, "nobody")), 10)), ErrorKind::NoSuchOwner);
}

TEST_F(Tracker, PinsAndPausesSurviveARestartOfTheAgent) {
    run(tracker.machine_appeared(vm("db-1")));
    run(tracker.machine_appeared(vm("db-2")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    const std::string lun = lease_resource_name(kLun);
    // The agent stops here; the state file is all the next one knows.
    std::string error;
    auto saved = parse_saved_state(format_saved_state(tracker.snapshot({}, 0)), error);
    ASSERT_TRUE(saved) << error;
    size_t pins_of_db1 = 0;
    for (const auto &p : saved->pins)
        pins_of_db1 += p.owner == "db-1" && p.resource == lun && p.versions.at(lun).lver == 1;
    EXPECT_EQ(pins_of_db1, 1u);
    ASSERT_EQ(saved->paused.size(), 2u);
    EXPECT_TRUE(saved->paused[0].stopped);

    lver[lun]++;  // another host took db-1's disk meanwhile (db-2 names the same LUN: both stale)
    LeaseRegistry reg2(1);
    MachineTracker next(reg2, config);
    next.load_saved(*saved);
    reg2.set_lockspace_state(LockspaceState::Joined);
    // The machine appears before anything else: its disk is asked for at
    // its version, before the rules could ask without one.
    Step appeared = next.machine_appeared(vm("db-1"));
    bool pinned = false;
    for (const auto &e : appeared.sanlock_effects)
        if (auto *a = std::get_if<AcquireEffect>(&e); a && a->resource == lun)
            pinned = a->pins.count(lun) && a->pins.at(lun).lver == 1;
    EXPECT_TRUE(pinned);
    run_on(next, reg2, std::move(appeared));
    const Machine *m = next.find("db-1");
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(m->stopped) << "the pause was remembered";
    EXPECT_EQ(machine_state(*m), "stale");
    // A new machine under db-2's name (another leader) starts afresh.
    MachineInfo fresh = vm("db-2");
    fresh.leader = 777;
    next.machine_appeared(fresh);
    EXPECT_FALSE(next.find("db-2")->stopped);
}

TEST(SavedStateFile, PinsPausesAndVersionsRoundTrip) {
    SavedState s;
    std::string r = lease_resource_name("/srv/a.img"), alias = lease_resource_name("/old/a.img");
    s.leases = {{r, "/srv/a.img", LeaseMode::Exclusive, {"db-1"}, {"/old/a.img"}, {{r, {7, 77}}, {alias, {3, 0}}}}};
    s.pins = {{"db-2", 4242, r, "/srv/a b.img", LeaseMode::Exclusive, true, {"/old/a.img"}, {{r, {9, 99}}}}};
    s.paused = {{"db-2", 4242, true, false}, {"db-3", 0, true, true}};
    std::string error;
    auto back = parse_saved_state(format_saved_state(s), error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->leases[0].versions, (LeaseVersions{{r, {7, 77}}, {alias, {3, 0}}}));
    ASSERT_EQ(back->pins.size(), 1u);
    EXPECT_EQ(back->pins[0].leader, 4242u);
    EXPECT_EQ(back->pins[0].disk, "/srv/a b.img");
    EXPECT_TRUE(back->pins[0].stale);
    EXPECT_EQ(back->pins[0].aliases, (std::vector<std::string>{"/old/a.img"}));
    EXPECT_EQ(back->pins[0].versions.at(r), (LeaseVersion{9, 99}));
    ASSERT_EQ(back->paused.size(), 2u);
    EXPECT_TRUE(back->paused[1].stopped && back->paused[1].frozen);
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\nlver " + r + " " + r + " 3 0\n", error)) << "a lver line alone";
    EXPECT_FALSE(parse_saved_state("vmlease-state 1\npaused db-1 1 sideways\n", error));
}

// The review's cases: staleness is for good, a restored pause waits for a
// scan, a re-take after a restart is pinned, this host's own versions move
// the pin on.
TEST_F(Tracker, AStaleMachineReleasedByAnAdministratorStaysStaleAndFrozen) {
    config.on_unprotected = UnprotectedAction::Pause;
    config.unprotected_grace = 0;
    run(tracker.machine_appeared(vm("db-1")));
    const Machine *m = tracker.find("db-1");
    const std::string lun = lease_resource_name(kLun);
    run(tracker.sanlock_lost());  // the sanlock daemon restarted: every lease gone
    Step over = run(tracker.grace_over("db-1", m->exposed_epoch));
    ASSERT_TRUE(m->frozen);
    lver[lun]++;  // another host took the disk meanwhile
    Step back = run(tracker.retry_failed());
    ASSERT_EQ(back.stale.size(), 1u);
    EXPECT_TRUE(m->stale);
    Step released = run(tracker.release_leases(5, "db-1"));
    for (const auto &e : released.machine_effects)
        EXPECT_NE(e.kind, MachineEffect::Kind::Thaw) << "a stale machine was thawed";
    EXPECT_TRUE(m->frozen);
    EXPECT_EQ(machine_state(*m), "stale");
    auto saved = tracker.snapshot({}, 0);
    ASSERT_EQ(saved.paused.size(), 1u);
    EXPECT_TRUE(saved.paused[0].stale);
}

TEST_F(Tracker, APauseRestoredAfterARestartIsNotResumedBeforeAScanShowsItsDisks) {
    run(tracker.machine_appeared(vm("db-1")));
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    std::string error;
    auto saved = parse_saved_state(format_saved_state(tracker.snapshot({}, 0)), error);
    ASSERT_TRUE(saved) << error;

    LeaseRegistry reg2(1);
    MachineTracker next(reg2, config);
    next.load_saved(*saved);
    reg2.set_lockspace_state(LockspaceState::Joined);
    Step s = run_on(next, reg2, next.machine_appeared(vm("db-1")));
    ASSERT_TRUE(s.resumed.empty()) << "resumed before its open files were scanned";
    const Machine *m = next.find("db-1");
    EXPECT_TRUE(machine_protected(*m));
    EXPECT_TRUE(m->stopped);
    Step scanned = next.files_discovered("db-1", {});
    EXPECT_EQ(scanned.resumed.size(), 1u) << "the scan found nothing more: it goes on";
    EXPECT_FALSE(m->stopped);
}

TEST_F(Tracker, AReTakeAfterARestartIsPinnedToTheVersionTheStateFileRecorded) {
    run(tracker.machine_appeared(vm("db-1")));
    const std::string lun = lease_resource_name(kLun);
    std::string error;
    auto saved = parse_saved_state(format_saved_state(tracker.snapshot({}, 0)), error);
    ASSERT_TRUE(saved) << error;
    ASSERT_EQ(saved->owner("db-1")->leader, 4242u);

    LeaseRegistry reg2(1);
    MachineTracker next(reg2, config);
    next.load_saved(*saved);
    reg2.set_lockspace_state(LockspaceState::Joined);
    LeaseVersions pins;
    for (const auto &e : next.machine_appeared(vm("db-1")).sanlock_effects)
        if (auto *a = std::get_if<AcquireEffect>(&e); a && a->resource == lun)
            pins = a->pins;
    EXPECT_EQ(pins, (LeaseVersions{{lun, {1, 0}}}));
    // Another machine under the name starts afresh.
    LeaseRegistry reg3(1);
    MachineTracker other(reg3, config);
    other.load_saved(*saved);
    reg3.set_lockspace_state(LockspaceState::Joined);
    MachineInfo fresh = vm("db-1");
    fresh.leader = 777;
    for (const auto &e : other.machine_appeared(fresh).sanlock_effects) {
        if (auto *a = std::get_if<AcquireEffect>(&e)) {
            EXPECT_TRUE(a->pins.empty()) << a->disk;
        }
    }
}

TEST_F(Tracker, AVersionThisHostTookTheLeaseAtMovesThePinOn) {
    run(tracker.machine_appeared(vm("db-1")));
    const std::string lun = lease_resource_name(kLun);
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    reg.set_lockspace_state(LockspaceState::Joined);
    // Meanwhile this host itself takes the disk and gives it back (an
    // AcquireDisk in the machine's name): version 2 is this host's.
    run(reg.acquire(7, "db-1", kLun, lun, LeaseMode::Exclusive));
    run(reg.release(8, "db-1", lun));
    EXPECT_EQ(lver[lun], 2u);
    Step back = run(tracker.retry_failed());
    EXPECT_TRUE(back.stale.empty()) << "this host's own version made it stale";
    EXPECT_TRUE(machine_protected(*tracker.find("db-1")));
    // Another host's version still does.
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    lver[lun] += 2;  // taken twice by another host
    reg.set_lockspace_state(LockspaceState::Joined);
    EXPECT_EQ(run(tracker.retry_failed()).stale.size(), 1u);
}

TEST_F(Tracker, AMachineThatRanWhileAnotherHostTookItsDiskMeetsOnConflict) {
    config.machines[0].on_lockfailure = LockFailureAction::Ignore;
    run(tracker.machine_appeared(vm("db-1")));
    const std::string lun = lease_resource_name(kLun);
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    lver[lun]++;
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = run(tracker.retry_failed(), 0, {2});
    ASSERT_EQ(back.stale.size(), 1u);
    ASSERT_EQ(back.conflicts.size(), 1u);
    bool killed = false;
    for (const auto &e : back.machine_effects)
        killed = killed || (e.kind == MachineEffect::Kind::Kill && e.signal == SIGKILL && e.machine == "db-1");
    EXPECT_TRUE(killed) << "on_conflict terminate of a stale machine is a SIGKILL, never a graceful stop";
}

TEST_F(Tracker, ALeaseFileMadeAnewIsAnotherLeaseEvenAtTheSameVersion) {
    run(tracker.machine_appeared(vm("db-1")));
    const std::string lun = lease_resource_name(kLun);
    reg.set_lockspace_state(LockspaceState::Failed);
    run(tracker.lock_failed());
    // Another host's cleanup removed the file; a new one was made and taken
    // once: version 1 again, as when db-1 held it, in another file.
    file[lun] = 4711;
    reg.set_lockspace_state(LockspaceState::Joined);
    EXPECT_EQ(run(tracker.retry_failed()).stale.size(), 1u);
}
