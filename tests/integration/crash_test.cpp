// Crash safety: the agent SIGKILLed while it holds leases, a state file that
// is corrupt, the sanlock daemon crashing under the agent. Real sanlock
// daemons (two hosts on one lease directory), the real systemd-machined and
// the real vmleased; nothing is faked.
#include "host.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace vmtest;

namespace {

template <typename Suite>
using CrashSuite = MachineHostsSuite<Suite>;

// A lease the restarted agent must not release: host 2 is refused every time
// it tries over 2 s (a release, which goes to sanlock off the agent's loop,
// would be through within that bound).
bool stays_held(Host &other, const std::string &disk) {
    for (auto until = std::chrono::steady_clock::now() + 2s; std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(250ms)) {
        std::string error = intrude(other, disk);
        if (error != "org.vmlease.Error.LeaseHeld") {
            ADD_FAILURE() << disk << ": host 2 got " << (error.empty() ? "the lease" : error);
            return false;
        }
    }
    return true;
}

class Crash : public CrashSuite<Crash> {
protected:
    static void SetUpTestSuite() { start("vml-crash"); }
};

TEST_F(Crash, LeasesSurviveSigkillAndThoseOfMachinesThatEndedMeanwhileAreReleased) {
    const std::string a = image("a.img"), b = image("b.img"), c = image("c.img"), api = image("api.img"),
                      pre = image("pre.img");
    Child vma = vm_process(root->path(), "vm-a", a), vmb = vm_process(root->path(), "vm-b", b),
          vmc = vm_process(root->path(), "vm-c", c);
    for (auto &[name, vm] : {std::pair<const char *, Child *>{"vm-a", &vma}, {"vm-b", &vmb}, {"vm-c", &vmc}})
        ASSERT_EQ(h1->machined->create_machine(name, vm->pid()).rfind("o ", 0), 0u);
    h1->client->AcquireDisk("backup", api, "exclusive", {});
    h1->client->RegisterMachine("vm-later", {{pre, "exclusive"}}, {{"grace_seconds", sdbus::Variant(uint32_t(600))}});
    const Leases before{{a, "vm-a", "held"},  {b, "vm-b", "held"},        {c, "vm-c", "held"},
                        {api, "backup", "held"}, {pre, "vm-later", "held"}};
    ASSERT_TRUE(eventually([&] { return leases_of(*h1) == before; }, 20s)) << h1->agent->log();

    kill_agent(*h1);
    // While it is down every lease stays with host 1 (orphans in sanlock).
    for (const auto &disk : {a, b, c, api, pre})
        EXPECT_EQ(intrude(*h2, disk), "org.vmlease.Error.LeaseHeld") << disk;
    // vm-c ends while nobody is watching.
    vmc.signal(SIGKILL);
    ASSERT_NE(vmc.wait(10s), -1);
    ASSERT_TRUE(eventually([&] { return h1->machined->call("ListMachines", {}).find("vm-c") == std::string::npos; },
                           10s));

    auto t0 = std::chrono::steady_clock::now();
    h1->agent->start();
    const Leases after{{a, "vm-a", "held"}, {b, "vm-b", "held"}, {api, "backup", "held"}, {pre, "vm-later", "held"}};
    ASSERT_TRUE(eventually([&] { return leases_of(*h1) == after; }, 20s)) << h1->agent->log();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "restart to reconciled (4 leases kept, 1 released): " << ms << " ms" << std::endl;

    // vm-c's lease is really gone from sanlock, the others really held.
    EXPECT_TRUE(eventually([&] { return intrude(*h2, c).empty(); }, 10s)) << h1->agent->log();
    for (const auto &disk : {a, b, api, pre})
        EXPECT_EQ(intrude(*h2, disk), "org.vmlease.Error.LeaseHeld") << disk;
    std::map<std::string, uint32_t> machines;
    for (const auto &m : h1->client->ListMachines())
        machines[m.get<0>()] = m.get<3>();
    EXPECT_EQ(machines, (std::map<std::string, uint32_t>{{"vm-a", 1}, {"vm-b", 1}, {"vm-later", 1}}));
    EXPECT_NE(h1->agent->log().find("1 released"), std::string::npos) << h1->agent->log();

    // And they behave as before the crash.
    vma.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-a", a}, 10s)) << h1->agent->log();
    h1->client->ReleaseDisk("backup", api);
    h1->client->ReleaseMachine("vm-later");
    vmb.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-b", b}, 10s)) << h1->agent->log();
    EXPECT_TRUE(eventually([&] { return leases_of(*h1).empty(); }, 10s));
}

TEST_F(Crash, ACorruptStateFileIsSurvivedAndNothingIsReleasedOnItsWord) {
    const std::string d = image("d.img"), kept = image("kept.img");
    Child vm = vm_process(root->path(), "vm-d", d);
    ASSERT_EQ(h1->machined->create_machine("vm-d", vm.pid()).rfind("o ", 0), 0u);
    h1->client->AcquireDisk("keeper", kept, "exclusive", {});
    ASSERT_TRUE(eventually([&] { return leases_of(*h1).size() == 2; }, 20s)) << h1->agent->log();

    kill_agent(*h1);
    write_file(runtime_file(*h1, "leases"), "vmlease-state 1\nlease zzz exclusive keeper /nowhere\n");
    h1->agent->start();
    // vm-d is running: discovery gives it its disk back (its orphan adopted).
    EXPECT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{d, "vm-d", "held"}}; }, 20s)) << h1->agent->log();
    EXPECT_TRUE(std::filesystem::exists(runtime_file(*h1, "leases.corrupt")));
    EXPECT_NE(h1->agent->log().find("line 2"), std::string::npos) << h1->agent->log();
    // keeper's lease cannot be attributed any more: it stays held by this
    // host rather than being released on a guess.
    EXPECT_TRUE(stays_held(*h2, kept));
    EXPECT_EQ(intrude(*h2, d), "org.vmlease.Error.LeaseHeld");
    // A new state file is written from what is known now.
    EXPECT_NE(read_file(runtime_file(*h1, "leases")).find(" vm-d "), std::string::npos);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-d", d}, 10s)) << h1->agent->log();
}

// The same with no state file at all (removed by hand, or a tmpfs wiped
// under /run): reported, and nothing released on the word of its absence.
TEST_F(Crash, AMissingStateFileIsReportedAndNothingIsReleasedOnItsWord) {
    const std::string m = image("m.img"), kept = image("kept-m.img");
    Child vm = vm_process(root->path(), "vm-m", m);
    ASSERT_EQ(h1->machined->create_machine("vm-m", vm.pid()).rfind("o ", 0), 0u);
    h1->client->AcquireDisk("keeper-m", kept, "exclusive", {});
    ASSERT_TRUE(eventually([&] { return leases_of(*h1).size() == 2; }, 20s)) << h1->agent->log();

    kill_agent(*h1);
    ASSERT_TRUE(std::filesystem::remove(runtime_file(*h1, "leases")));
    h1->agent->start();
    EXPECT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{m, "vm-m", "held"}}; }, 20s)) << h1->agent->log();
    EXPECT_NE(h1->agent->log().find("no saved lease state in " + runtime_file(*h1, "leases")), std::string::npos)
        << h1->agent->log();
    EXPECT_TRUE(stays_held(*h2, kept));
    EXPECT_EQ(intrude(*h2, m), "org.vmlease.Error.LeaseHeld");
    EXPECT_NE(read_file(runtime_file(*h1, "leases")).find(" vm-m "), std::string::npos);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-m", m}, 10s)) << h1->agent->log();
}

TEST_F(Crash, GracefulStopKeepsEveryLeaseForTheNextStart) {
    const std::string e = image("e.img");
    Child vm = vm_process(root->path(), "vm-e", e);
    ASSERT_EQ(h1->machined->create_machine("vm-e", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{e, "vm-e", "held"}}; }, 20s)) << h1->agent->log();
    EXPECT_EQ(h1->agent->stop(), 0);
    EXPECT_EQ(intrude(*h2, e), "org.vmlease.Error.LeaseHeld");
    h1->agent->start();
    EXPECT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{e, "vm-e", "held"}}; }, 20s)) << h1->agent->log();
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-e", e}, 10s)) << h1->agent->log();
}

TEST_F(Crash, ReloadAndSighupKeepEveryHeldLease) {
    const std::string f = image("f.img"), g = image("g.img");
    Child vm = vm_process(root->path(), "vm-f", f);
    ASSERT_EQ(h1->machined->create_machine("vm-f", vm.pid()).rfind("o ", 0), 0u);
    h1->client->AcquireDisk("holder", g, "exclusive", {});
    const Leases held{{f, "vm-f", "held"}, {g, "holder", "held"}};
    ASSERT_TRUE(eventually([&] { return leases_of(*h1) == held; }, 20s)) << h1->agent->log();
    h1->client->clear_events();

    std::string good = read_file(h1->agent->config_path());
    write_file(h1->agent->config_path(), good + "on_conflict: warn\n");
    h1->agent->child().signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return h1->agent->log().find("configuration reloaded") != std::string::npos; }, 10s));
    write_file(h1->agent->config_path(), good + "io_timeout: [\n");
    EXPECT_EQ(error_of([&] { h1->client->Reload(); }), "org.vmlease.Error.ConfigInvalid");
    write_file(h1->agent->config_path(), good);
    h1->client->Reload();

    EXPECT_EQ(leases_of(*h1), held);
    for (const auto &e : h1->client->events())
        EXPECT_NE(e.name, "LeaseReleased") << e.args[0] << " " << e.args[1];
    EXPECT_EQ(intrude(*h2, f), "org.vmlease.Error.LeaseHeld");
    EXPECT_EQ(intrude(*h2, g), "org.vmlease.Error.LeaseHeld");
    h1->client->ReleaseDisk("holder", g);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-f", f}, 10s)) << h1->agent->log();
}

// --- the sanlock daemon crashing under the agent ---------------------------------------

class SanlockCrash : public CrashSuite<SanlockCrash> {
protected:
    // sanlock takes longer to rejoin here than the default grace: with it,
    // on_unprotected would stop the machines first (Unprotected suite); this
    // suite is about what happens when they outlive the outage.
    // Machines named short-* keep the short grace: they show on_unprotected
    // stopping a machine the outage left without its lease.
    static void SetUpTestSuite() {
        start("vml-slcrash", "unprotected_grace: 600\nmachines:\n  - match: \"short-*\"\n    disks: []\n"
                             "    unprotected_grace: 3\n");
    }
};

TEST_F(SanlockCrash, LeasesAreTakenAgainWhenSanlockIsBackAndOneTakenMeanwhileMeetsOnConflict) {
    const std::string s = image("s.img"), t = image("t.img"), u = image("u.img");
    Child vms = vm_process(root->path(), "vm-s", s), vmt = vm_process(root->path(), "vm-t", t);
    Child vmu = vm_process(root->path(), "short-u", u);
    ASSERT_EQ(h1->machined->create_machine("vm-s", vms.pid()).rfind("o ", 0), 0u);
    ASSERT_EQ(h1->machined->create_machine("vm-t", vmt.pid()).rfind("o ", 0), 0u);
    ASSERT_EQ(h1->machined->create_machine("short-u", vmu.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(eventually(
        [&] {
            return leases_of(*h1) == Leases{{s, "vm-s", "held"}, {t, "vm-t", "held"}, {u, "short-u", "held"}};
        },
        20s))
        << h1->agent->log();

    h1->sanlock.crash();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "failed", 20s)) << h1->agent->log();
    // No on_lockfailure covers a sanlock that is gone: once its grace (3 s)
    // is over, on_unprotected (terminate) stops the machine.
    EXPECT_NE(vmu.wait(20s), -1) << "short-u outlived its grace without a lease\n" << h1->agent->log();
    EXPECT_TRUE(h1->client->wait_for("MachineUnprotected", {"short-u", u}, 1s));
    EXPECT_NE(h1->agent->log().find("machine short-u stayed unprotected for 3 s"), std::string::npos);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-s", s}, 5s));
    EXPECT_TRUE(leases_of(*h1).empty()) << "sanlock forgot them; the agent must not claim them";
    EXPECT_TRUE(vms.running() && vmt.running()) << "machines keep running while sanlock is away";
    // systemd restarts sanlock; it joins as host 1 again once its old host
    // lease has expired (it cannot tell that lease was its own).
    h1->sanlock.start();
    // Host 2 may take t.img once host 1's host lease has expired (sanlock's
    // own safety margin, not ours); meanwhile its acquire waits inside
    // sanlock, longer than a D-Bus call does (NoReply), and the same owner
    // asking again joins the acquire still under way.
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually(
        [&] {
            return error_of([&] { h2->client->AcquireDisk("vm-elsewhere", t, "exclusive", {}); }).empty();
        },
        150s));
    std::cout << "host 2 got the disk " << std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::steady_clock::now() - t0).count()
              << " s after host 1's sanlock died" << std::endl;

    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", 150s)) << h1->agent->log();
    EXPECT_TRUE(h1->client->wait_for("LeaseConflict", {"vm-t", t, "2"}, 30s)) << h1->agent->log();
    // Its lease's version moved on while it ran without it: stale as well.
    EXPECT_TRUE(h1->client->wait_for("MachineStale", {"vm-t", t, "2"}, 5s)) << h1->agent->log();
    EXPECT_NE(vmt.wait(20s), -1) << "on_conflict=terminate left vm-t running";
    EXPECT_TRUE(eventually([&] { return leases_of(*h1) == Leases{{s, "vm-s", "held"}}; }, 20s)) << h1->agent->log();
    EXPECT_EQ(intrude(*h2, s), "org.vmlease.Error.LeaseHeld");
    h2->client->ReleaseDisk("vm-elsewhere", t);
    vms.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"vm-s", s}, 10s)) << h1->agent->log();
}

}  // namespace

namespace {

// --- the agent starting while sanlock is not running -------------------------------------

TEST(SanlockAbsent, TheAgentWaitsForSanlockAndThenProtectsRunningMachines) {
    Site site("vml-noslk");
    std::string images = site.root / "images";
    std::filesystem::create_directories(images);
    std::string disk = images + "/w.img";
    std::ofstream(disk).put('x');
    HostOptions o;
    o.with_machined = true;
    o.start_agent = false;
    o.extra_yaml = discovery_yaml(images);
    Host h(site.root.path(), site.lease_dir(), 1, o);
    Child vm = vm_process(site.root.path(), "vm-w", disk);
    ASSERT_EQ(h.machined->create_machine("vm-w", vm.pid()).rfind("o ", 0), 0u);
    h.sanlock.stop();

    h.start_agent();  // READY without sanlock: the bus API answers and says why
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "failed", 20s)) << h.agent->log();
    EXPECT_TRUE(eventually([&] { return h.agent->log().find("sanlock daemon is not running") != std::string::npos; },
                           10s))
        << h.agent->log();
    EXPECT_TRUE(h.client->ListLeases().empty());
    EXPECT_EQ(error_of([&] { h.client->AcquireDisk("someone", disk, "exclusive", {}); }),
              "org.vmlease.Error.LockspaceUnavailable");

    h.sanlock.start();
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined", 90s)) << h.agent->log();
    EXPECT_TRUE(eventually([&] { return leases_of(h) == Leases{{disk, "vm-w", "held"}}; }, 20s)) << h.agent->log();
    vm.signal(SIGKILL);
    EXPECT_TRUE(eventually([&] { return leases_of(h).empty(); }, 10s)) << h.agent->log();
}

}  // namespace
