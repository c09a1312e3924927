// The machine tracker decides which disks a machine needs and what happens
// on a conflict; driven here with the real lease registry and sanlock
// outcomes supplied by the test.
#include "machine_tracker.hpp"

#include "disk_path.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <map>

using namespace vmlease;

namespace {

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
            for (const auto &e : step.effects) {
                if (auto *a = std::get_if<AcquireEffect>(&e))
                    next.append(reg.acquire_done(a->resource, {rv, holders, ""}));
                else if (auto *r = std::get_if<ReleaseEffect>(&e))
                    next.append(reg.release_done(r->resource, {0, {}, ""}));
            }
            all.append(std::move(step));
            if (next.empty())
                return all;
            step = std::move(next);
        }
    }
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
    EXPECT_EQ(s.changes.size(), 2u);
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
    EXPECT_TRUE(again.effects.empty());
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
    ASSERT_EQ(pending.effects.size(), 2u);
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
    EXPECT_TRUE(appear.effects.empty());  // nothing taken twice
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
    EXPECT_EQ(reply->error->kind, ErrorKind::LeaseHeld);
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
    EXPECT_EQ(s.replies[0].error->kind, ErrorKind::Failed);
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
    EXPECT_TRUE(s.effects.empty());
    ASSERT_EQ(devices.find("db-1")->disks.size(), 1u);
    EXPECT_EQ(devices.find("db-1")->disks[0].state, MachineDisk::State::Waiting);
    EXPECT_STREQ(to_string(devices.find("db-1")->disks[0].state), "waiting-for-device");
    EXPECT_TRUE(devices.device_appeared().empty());  // some other device

    namer.present = true;
    s = devices.device_appeared();
    ASSERT_EQ(s.effects.size(), 1u);
    EXPECT_EQ(std::get<AcquireEffect>(s.effects[0]).resource, lease_resource_name(DeviceNamer::kLun));
    EXPECT_EQ(devices.find("db-1")->disks[0].state, MachineDisk::State::Acquiring);
    EXPECT_TRUE(devices.device_appeared().empty());  // taken once
}

TEST_F(TrackerWithDevices, DiscoveredDevicesAreMatchedAndLeasedByTheirCanonicalName) {
    namer.present = true;
    config.machines.clear();
    devices.machine_appeared(vm("web-1"));
    Step s = devices.files_discovered("web-1", {{"/dev/sdc", true}});
    ASSERT_EQ(s.effects.size(), 1u);
    EXPECT_EQ(devices.find("web-1")->disks[0].disk, DeviceNamer::kLun);
    // A device path that resolves to nothing is not a disk to protect.
    namer.present = false;
    devices.machine_appeared(vm("web-2"));
    EXPECT_TRUE(devices.files_discovered("web-2", {{"/dev/sdc", true}}).effects.empty());
    EXPECT_TRUE(devices.find("web-2")->disks.empty());
}

}  // namespace

namespace {

TEST_F(Tracker, ALockFailureAppliesEachMachinesActionAndReleasesEverything) {
    config.machines.push_back({"keep-*", {{"/srv/keep.img", LeaseMode::Exclusive}}, LockFailureAction::Ignore, {}});
    config.machines.push_back({"svc-*", {{"/srv/svc.img", LeaseMode::Exclusive}}, LockFailureAction::Restart, {}});
    config.machines.push_back({"scope-*", {{"/srv/scope.img", LeaseMode::Exclusive}}, LockFailureAction::Restart, {}});
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
    EXPECT_TRUE(reg.leases().empty()) << "every lease is released";

    // Back: disks of machines still there are taken again, the service is started.
    reg.set_lockspace_state(LockspaceState::Joined);
    Step back = run(tracker.retry_failed());
    ASSERT_EQ(back.machine_effects.size(), 1u);
    EXPECT_EQ(back.machine_effects[0].kind, MachineEffect::Kind::StartUnit);
    EXPECT_EQ(back.machine_effects[0].unit, "qemu-svc.service");
    EXPECT_NE(reg.find(lease_resource_name("/srv/keep.img")), nullptr);
    EXPECT_EQ(reg.find(lease_resource_name("/srv/api.img")), nullptr);  // not a machine: the caller takes it again
    EXPECT_TRUE(run(tracker.retry_failed()).machine_effects.empty());    // started once
}

}  // namespace
