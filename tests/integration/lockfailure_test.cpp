// Lock failure: this host loses its lockspace while machines hold leases.
// Real sanlock, real systemd-machined, the real vmleased and its killpath
// helper; the storage failure is real too (faultfs, a FUSE file system that
// starts failing on command).
#include "faultfs.hpp"
#include "host.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace vmtest;

namespace {

using Clock = std::chrono::steady_clock;

char process_state(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

std::string rules(const std::string &images, const std::vector<std::pair<std::string, std::string>> &machines) {
    std::string y = "machines:\n";
    for (const auto &[name, action] : machines)
        y += "  - match: \"" + name + "\"\n    on_lockfailure: " + action + "\n    disks:\n      - {path: " + images +
             "/" + name + ".img, mode: exclusive}\n";
    return y;
}

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

const std::vector<std::pair<std::string, std::string>> kActions = {
    {"lf-off", "poweroff"}, {"lf-term", "terminate"}, {"lf-pause", "pause"}, {"lf-ign", "ignore"}, {"lf-rst", "restart"}};

class LockFailure : public HostsSuite<LockFailure> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-lf");
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = rules(*root / "images", kActions);
        start_hosts({o});
    }
};

TEST_F(LockFailure, EachMachineGetsItsActionWhenSanlockRemovesTheLockspace) {
    std::map<std::string, Child> vms;
    for (const auto &[name, action] : kActions) {
        // lf-term's VM ignores SIGTERM: systemd's stop ends it with SIGKILL
        // after its 5 s timeout, and its lease stays held until then, so
        // sanlock keeps asking (SIGTERM every second) within one failure.
        std::vector<std::string> argv{"/bin/sleep", "600"};
        if (name == "lf-term")
            argv = {"/bin/bash", "-c", "trap '' TERM; exec /bin/sleep 600"};
        vms[name] = Child(argv, {}, root->path() + "/" + name + ".log");
        ASSERT_EQ(h1->machined->create_machine(name, vms[name].pid()).rfind("o ", 0), 0u);
    }
    for (const auto &[name, action] : kActions)
        ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {name}, 10s)) << name << "\n" << h1->agent->log();
    h1->client->clear_events();
    const std::string paused_disk = *root / "images/lf-pause.img";
    const uint64_t paused_held = std::get<3>(h1->client->InspectDisk(paused_disk));

    // The lockspace goes away under held leases: sanlock SIGTERMs the agent
    // (from its helper process) until they are released.
    const size_t sanlock_log_from = read_file(h1->dir + "/sanlock/sanlock.log").size();
    std::string out;
    int rc = run({required_env("SANLOCK"), "client", "rem_lockspace", "-s",
                  "__LIBVIRT__DISKS__:1:" + *root / "leases/__LIBVIRT__DISKS__" + ":0"},
                 h1->sanlock.env(), &out, 60s);
    EXPECT_EQ(rc, 0) << out;

    for (const auto &[name, action] : kActions)
        EXPECT_TRUE(h1->client->wait_for("LockFailure", {name, "__LIBVIRT__DISKS__", action}, 20s)) << name;
    // Until the lockspace is joined again, new acquires are refused as such
    // (lf-term's lease keeps the old lockspace in sanlock for 5 s more, and
    // the rejoin takes sanlock seconds after that: the state is read first).
    const std::string during = h1->client->LockspaceState();
    ASSERT_NE(during, "joined") << "rejoined before the check";
    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("newcomer", "/srv/newcomer.img", "exclusive", {}); }, &message),
              "org.vmlease.Error.LockspaceUnavailable")
        << "lockspace " << during << ": " << message;
    if (message.empty())
        h1->client->ReleaseDisk("newcomer", "/srv/newcomer.img");
    for (const auto &[name, action] : kActions)
        EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {name}, 20s)) << name;
    int st = vms["lf-off"].wait(20s);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "poweroff: status " << st;
    st = vms["lf-rst"].wait(20s);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) << "restart: status " << st;
    st = vms["lf-term"].wait(20s);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "terminate of a VM ignoring SIGTERM: status " << st;
    EXPECT_TRUE(eventually([&] { return process_state(vms["lf-pause"].pid()) == 'T'; }, 10s))
        << "pause: state " << process_state(vms["lf-pause"].pid());
    EXPECT_TRUE(vms["lf-ign"].running());
    EXPECT_NE(process_state(vms["lf-ign"].pid()), 'T');
    EXPECT_NE(h1->agent->log().find("restart acts as terminate"), std::string::npos);
    EXPECT_TRUE(h1->agent->child().running()) << "sanlock killed the agent";

    // The lockspace is joined again by itself; machines still running are
    // protected again.
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "joined", 60s)) << h1->agent->log();
    for (const char *name : {"lf-pause", "lf-ign"})
        EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {name}, 20s)) << name;
    std::string log = h1->agent->log();
    bool saw_failed = log.find("lockspace __LIBVIRT__DISKS__ is failed") != std::string::npos;
    bool saw_rejoining = log.find("lockspace __LIBVIRT__DISKS__ is rejoining") != std::string::npos;
    EXPECT_TRUE(saw_failed && saw_rejoining) << "LockspaceState did not go failed -> rejoining -> joined";
    // Once per failure: sanlock asks again (SIGTERM, the killpath helper)
    // until the leases are gone; each machine's action was taken once.
    const std::string sanlock_log = read_file(h1->dir + "/sanlock/sanlock.log").substr(sanlock_log_from);
    auto count = [&](const std::string &what) {
        size_t n = 0;
        for (size_t at = 0; (at = sanlock_log.find(what, at)) != std::string::npos; at++)
            n++;
        return n;
    };
    const size_t helper_runs = count("killpath-status: running "), sigterms = count(" sig 15 count ");
    ASSERT_GE(sigterms + helper_runs, 2u) << "sanlock asked only once: nothing to act twice on";
    for (const auto &[name, action] : kActions) {
        size_t signalled = 0;
        for (const auto &e : h1->client->events())
            signalled += e.name == "LockFailure" && e.args.at(0) == name;
        EXPECT_EQ(signalled, 1u) << name << ": LockFailure " << signalled << " times in one failure";
    }
    // ignore is said at alert level (priority 1), the other actions lower.
    EXPECT_NE(log.find("<1>lock failure: lf-ign: ignore; its leases are released and it keeps running UNPROTECTED"),
              std::string::npos)
        << log;
    std::cout << "one lock failure: sanlock sent " << sigterms << " SIGTERM(s), ran the killpath helper "
              << helper_runs << " time(s); each machine acted on once" << std::endl;

    // The paused machine's lease came back at the version it had: it goes
    // on by itself (resume_after_lockfailure, default on) and says so.
    EXPECT_TRUE(h1->client->wait_for("MachineResumed", {"lf-pause"}, 20s)) << h1->agent->log();
    EXPECT_TRUE(eventually([&] { return process_state(vms["lf-pause"].pid()) != 'T'; }, 10s))
        << "pause: still stopped after the rejoin";
    const uint64_t paused_back = std::get<3>(h1->client->InspectDisk(paused_disk));
    EXPECT_EQ(paused_back, paused_held + 1) << "taken back once, by this host";
    std::cout << "lf-pause: lease version " << paused_held << " before the failure, " << paused_back
              << " taken back after the rejoin; resumed" << std::endl;
    for (const char *name : {"lf-pause", "lf-ign"})
        h1->machined->call("TerminateMachine", {"s", name});
    for (const char *name : {"lf-pause", "lf-ign"})
        EXPECT_NE(vms[name].wait(20s), -1) << name;
}

// vmleased(8) "LOGGING" on a real journald (a host of its own, so the
// suite's agent keeps its plain log): each lock-failure action and its
// outcome carry MESSAGE_ID 4a18cd03... with VMLEASE_OWNER/ACTION/RESULT,
// ignore at alert level; the failure itself 2f1d...a04 with VMLEASE_LOCKSPACE;
// a lease acquired 2f1d...a01 with VMLEASE_OWNER/DISK/RESOURCE.
TEST_F(LockFailure, OnTheJournalEachActionAndItsOutcomeCarryTheirMessageIdAndFields) {
    Journald journald(*root / "journal");
    const std::string leases = *root / "leases-j";
    std::filesystem::create_directories(leases);
    HostOptions o;
    o.with_machined = true;
    o.extra_yaml = rules(*root / "images", {{"jr-ign", "ignore"}, {"jr-off", "poweroff"}});
    o.agent_wrapper = journald.wrapper();
    Host &j = test_host(3, leases, o);
    ASSERT_TRUE(j.client->wait_property("LockspaceState", "joined")) << journald.entries();
    std::map<std::string, Child> vms;
    for (const char *name : {"jr-ign", "jr-off"}) {
        vms[name] = Child({"/bin/sleep", "600"}, {}, root->path() + "/" + name + ".log");
        ASSERT_EQ(j.machined->create_machine(name, vms[name].pid()).rfind("o ", 0), 0u);
        ASSERT_TRUE(j.client->wait_for("LeaseAcquired", {name}, 10s)) << journald.entries();
    }
    std::string out;
    ASSERT_EQ(run({required_env("SANLOCK"), "client", "rem_lockspace", "-s",
                   "__LIBVIRT__DISKS__:3:" + leases + "/__LIBVIRT__DISKS__:0"},
                  j.sanlock.env(), &out, 60s),
              0)
        << out;
    for (const char *name : {"jr-ign", "jr-off"})
        ASSERT_TRUE(j.client->wait_for("LockFailure", {name}, 20s)) << name;
    int st = vms["jr-off"].wait(20s);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "poweroff: status " << st;

    // Entries as journalctl -o json gives them, once the outcome of poweroff is in.
    std::vector<nlohmann::json> entries;
    auto find = [&](const std::map<std::string, std::string> &fields) -> const nlohmann::json * {
        for (const auto &e : entries) {
            bool all = true;
            for (const auto &[k, v] : fields)
                all = all && e.contains(k) && e[k].is_string() && e[k].get<std::string>() == v;
            if (all)
                return &e;
        }
        return nullptr;
    };
    const std::string action_id = "4a18cd03ea52455abe990a4f3510d6e5";
    ASSERT_TRUE(eventually([&] {
        entries.clear();
        std::istringstream in(journald.entries({"SYSLOG_IDENTIFIER=vmleased"}));
        for (std::string line; std::getline(in, line);)
            if (!line.empty())
                entries.push_back(nlohmann::json::parse(line, nullptr, false));
        return find({{"MESSAGE_ID", action_id}, {"VMLEASE_OWNER", "jr-off"}, {"VMLEASE_RESULT", "done"}}) != nullptr;
    }, 20s)) << journald.entries();
    std::cout << entries.size() << " vmleased entries on the journal" << std::endl;

    const std::string disk = *root / "images/jr-off.img";
    EXPECT_TRUE(find({{"MESSAGE_ID", "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a01"}, {"VMLEASE_OWNER", "jr-off"},
                      {"VMLEASE_DISK", disk}, {"VMLEASE_RESOURCE", lease_name(disk)}, {"PRIORITY", "6"}}));
    EXPECT_TRUE(find({{"MESSAGE_ID", "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a04"}, {"VMLEASE_LOCKSPACE", "__LIBVIRT__DISKS__"},
                      {"PRIORITY", "2"}}));
    const auto *ignored = find({{"MESSAGE_ID", action_id}, {"VMLEASE_OWNER", "jr-ign"}, {"VMLEASE_ACTION", "ignore"},
                                {"VMLEASE_RESULT", "leases released"}});
    ASSERT_TRUE(ignored) << journald.entries();
    EXPECT_EQ((*ignored)["PRIORITY"], "1") << "ignore is said at alert level";
    const auto *powered_off = find({{"MESSAGE_ID", action_id}, {"VMLEASE_OWNER", "jr-off"},
                                    {"VMLEASE_ACTION", "poweroff"}, {"VMLEASE_RESULT", "done"}});
    ASSERT_TRUE(powered_off);
    EXPECT_EQ((*powered_off)["PRIORITY"], "4");
    // Each action once: one outcome entry per machine.
    size_t outcomes = 0;
    for (const auto &e : entries)
        outcomes += e.value("MESSAGE_ID", "") == action_id && e.contains("VMLEASE_RESULT");
    EXPECT_EQ(outcomes, 2u) << journald.entries({"MESSAGE_ID=" + action_id});

    j.machined->call("TerminateMachine", {"s", "jr-ign"});
    EXPECT_NE(vms["jr-ign"].wait(20s), -1);
    stop_test_hosts();  // while its journald still runs
}

// --- storage that really fails ---------------------------------------------------
// vmlease-holder is the live sanlock client that gets the killpath run while
// vmleased is not: if it dies (OOM, an admin's kill) while the lockspace is
// joined, vmleased starts another at once and says so.
TEST_F(LockFailure, AHolderThatDiesIsReplaced) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", 30s)) << h1->agent->log();
    const std::string pid_file = h1->dir + "/agent/runtime/holder.pid";
    pid_t first = 0;
    ASSERT_TRUE(eventually(
        [&] {
            std::string text = read_file(pid_file);
            first = text.empty() ? 0 : std::stoi(text);
            return first > 0 && kill(first, 0) == 0;
        },
        10s));
    ASSERT_EQ(kill(first, SIGKILL), 0);
    pid_t second = 0;
    EXPECT_TRUE(eventually(
        [&] {
            std::string text = read_file(pid_file);
            second = text.empty() ? 0 : std::stoi(text);
            return second != first && second > 0 && kill(second, 0) == 0;
        },
        10s))
        << h1->agent->log();
    EXPECT_NE(h1->agent->log().find("vmlease-holder (pid " + std::to_string(first) + ") exited"), std::string::npos)
        << h1->agent->log();
}

class StorageLoss : public HostsSuite<StorageLoss> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-fs");
        // Host 1's lease directory is faultfs over backing/; host 2 (a
        // test_host) sees the same files in backing/, its storage working.
        fs = std::make_unique<FaultFs>(*root / "backing", lease_dir, *root / "faultfs.log");
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = rules(*root / "images",
                             {{"fs-a", "poweroff"}, {"fs-b", "poweroff"}, {"fs-c", "poweroff"}, {"fs-d", "poweroff"},
                              {"fs-e", "poweroff"}, {"fs-f", "pause"}, {"fs-g", "poweroff"},
                              {"fs-h", "poweroff"}, {"fs-s", "pause"}, {"fs-r", "pause"}});
        o.start_agent = false;
        hosts.push_back(std::make_unique<Host>(root->path(), fs->mountpoint(), 1, o));
        h1 = hosts.back().get();
        // The suite uses io_timeout 1; VMLEASE_TEST_IO_TIMEOUT=10 measures
        // sanlock's slower timeline by hand (about 80 s to the killpath).
        if (const char *t = getenv("VMLEASE_TEST_IO_TIMEOUT"))
            h1->config.io_timeout = static_cast<uint32_t>(std::stoul(t));
        h1->start_agent();
        ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", 120s)) << h1->agent->log();
    }
    static void TearDownTestSuite() {
        // Storage back first: sanlock cannot stop with I/O hung or failing.
        if (fs)
            fs->set("ok");
        while (!hosts.empty())
            hosts.pop_back();
        h1 = nullptr;
        fs.reset();
        HostsSuite::TearDownTestSuite();
    }
    void TearDown() override {
        if (fs)
            fs->set("ok");
        if (HasFailure() && h1) {
            // sanlock's log of kills and killpath runs, and what the helper said.
            std::istringstream sanlock_log(read_file(h1->dir + "/sanlock/sanlock.log"));
            std::string relevant;
            for (std::string line; std::getline(sanlock_log, line);)
                if (line.find("kill") != std::string::npos || line.find("lock-failure") != std::string::npos ||
                    line.find("vmlease") != std::string::npos || line.find("helper") != std::string::npos)
                    relevant += line + "\n";
            if (relevant.size() > 8000)
                relevant = relevant.substr(0, 4000) + "\n...\n" + relevant.substr(relevant.size() - 4000);
            std::cerr << "--- sanlock log of host 1 (kills, helper) ---\n" << relevant << std::endl;
        }
        HostsSuite::TearDown();  // checks every host, prints their logs on failure
    }
    // Deadlines grow with sanlock's io_timeout.
    static std::chrono::milliseconds slow(std::chrono::milliseconds d) { return d * h1->config.io_timeout; }
    static inline std::unique_ptr<FaultFs> fs;
};

TEST_F(StorageLoss, TheKillpathHelperReportsAndTheAgentActsThenRejoins) {
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-a.log");
    ASSERT_EQ(h1->machined->create_machine("fs-a", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-a"}, 10s)) << h1->agent->log();

    auto t0 = Clock::now();
    fs->set("eio");
    auto failure = h1->client->wait_event("LockFailure", {"fs-a", "__LIBVIRT__DISKS__", "poweroff"}, slow(60s));
    ASSERT_TRUE(failure) << h1->agent->log();
    int st = vm.wait(20s);
    auto killed = Clock::now();
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
    auto released = h1->client->wait_event("LeaseReleased", {"fs-a"}, 20s);
    ASSERT_TRUE(released);
    EXPECT_NE(h1->agent->log().find("vmlease-lockfailure reported"), std::string::npos)
        << "the failure did not come through the killpath helper";
    std::cout << "io_timeout " << h1->config.io_timeout << ", storage EIO -> LockFailure " << seconds(t0, failure->at) << " s, VM killed (seen) "
              << seconds(t0, killed) << " s, lease released " << seconds(t0, released->at) << " s" << std::endl;

    // While the storage still fails sanlock may go on listing the lockspace
    // (until it has removed it); a rejoin attempt that finds it listed must not
    // count as joined. Sampled over 3 s of rejoin attempts (back-off from 1 s).
    bool listed = false;
    std::string joined_while_failing;
    for (auto until = Clock::now() + 3s; Clock::now() < until; std::this_thread::sleep_for(200ms)) {
        std::string status;
        run({required_env("SANLOCK"), "client", "status"}, h1->sanlock.env(), &status, 5s);
        listed = listed || status.find("s __LIBVIRT__DISKS__:1:") != std::string::npos;
        if (h1->client->LockspaceState() == "joined")
            joined_while_failing = status;
    }
    EXPECT_EQ(joined_while_failing, "") << "LockspaceState joined while the storage fails; sanlock listed:";
    std::cout << "storage still failing: sanlock " << (listed ? "still listed" : "no longer listed")
              << " the lockspace; LockspaceState never joined" << std::endl;

    fs->set("ok");
    auto healed = Clock::now();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    std::cout << "storage back -> lockspace joined " << seconds(healed, Clock::now()) << " s" << std::endl;
    h1->client->AcquireDisk("after", "/srv/after.img", "exclusive", {});
    EXPECT_EQ(leases_of(*h1).count({"/srv/after.img", "after", "held"}), 1u);
    h1->client->ReleaseDisk("after", "/srv/after.img");
}

TEST_F(StorageLoss, TheHelperStopsTheVmItselfWhenTheAgentCannotAnswer) {
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-b.log");
    ASSERT_EQ(h1->machined->create_machine("fs-b", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-b"}, 10s)) << h1->agent->log();

    // What the helper will act on without the agent.
    std::string plan = read_file(h1->dir + "/agent/runtime/lockfailure-plan");
    EXPECT_NE(plan.find("machine fs-b poweroff"), std::string::npos) << plan;
    h1->agent->child().signal(SIGSTOP);
    auto t0 = Clock::now();
    fs->set("eio");
    int st = vm.wait(slow(60s));
    auto killed = Clock::now();
    bool agent_stopped = process_state(h1->agent->child().pid()) == 'T';
    h1->agent->child().signal(SIGCONT);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
    EXPECT_TRUE(agent_stopped) << "the agent was running after all";
    std::cout << "agent stopped, storage EIO -> VM killed by the helper " << seconds(t0, killed) << " s" << std::endl;

    fs->set("ok");
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    EXPECT_TRUE(h1->client->ListLeases().empty());
}

// How often sanlock has tried to free what client `pid` holds in a failed
// lockspace (its kill_count: once a second, killpath first, then signals);
// it stops counting once nothing of that client is left there.
int kill_count(const Host &h, pid_t pid) {
    std::string out;
    run({required_env("SANLOCK"), "client", "status", "-D"}, h.sanlock.env(), &out, 5s);
    // "p PID NAME", then its state one "    key=value" per line.
    // The agent has several connections: the highest count is the one
    // holding the lease.
    std::istringstream in(out);
    const std::string who = "p " + std::to_string(pid) + " ";
    bool in_client = false;
    int count = -1;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("    ", 0) != 0)
            in_client = line.rfind(who, 0) == 0;
        else if (in_client && line.rfind("    kill_count=", 0) == 0)
            count = std::max(count, std::atoi(line.c_str() + 15));
    }
    return count;
}

// The agent is dead (SIGKILL: its connections, and with them sanlock's
// reason to run the killpath, are gone) when this host's storage fails.
// vmlease-holder is the live client sanlock runs the helper for; the helper
// stops the VM through machined, before host 2 may take the disk.
TEST_F(StorageLoss, WithTheAgentKilledTheVmIsStillStoppedBeforeAnotherHostTakesItsDisk) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    // Host 2 sees the same files without faultfs: its storage keeps working.
    Host &h2 = test_host(2, *root / "backing");
    ASSERT_TRUE(h2.client->wait_property("LockspaceState", "joined", 120s)) << h2.agent->log();

    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-c.log");
    ASSERT_EQ(h1->machined->create_machine("fs-c", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-c"}, 10s)) << h1->agent->log();
    const std::string disk = root->path() + "/images/fs-c.img";
    ASSERT_EQ(intrude(h2, disk), "org.vmlease.Error.LeaseHeld");
    pid_t holder = std::stoi(read_file(h1->dir + "/agent/runtime/holder.pid"));
    ASSERT_EQ(kill(holder, 0), 0) << "no vmlease-holder runs";

    kill_agent(*h1);
    auto t0 = Clock::now();
    fs->set("eio");
    // The VM's end is timed on a thread of its own: host 2's attempts block.
    std::optional<Clock::time_point> stopped, taken;
    std::thread watch([&] {
        if (vm.wait(slow(150s)) != -1)
            stopped = Clock::now();
    });
    while (Clock::now() - t0 < slow(150s) && !taken) {
        if (intrude(h2, disk).empty())
            taken = Clock::now();
        else
            std::this_thread::sleep_for(500ms);
    }
    if (!taken)
        vm.signal(SIGKILL);
    watch.join();
    ASSERT_TRUE(stopped) << "the VM was never stopped";
    EXPECT_TRUE(WIFSIGNALED(vm.status()) && WTERMSIG(vm.status()) == SIGKILL) << describe_status(vm.status());
    ASSERT_TRUE(taken) << "host 2 never got the disk";
    EXPECT_LT(*stopped, *taken) << "host 2 took the disk while the VM still ran";
    std::cout << "agent killed; storage EIO -> VM stopped by the helper " << seconds(t0, *stopped)
              << " s -> host 2 acquires its disk " << seconds(t0, *taken) << " s" << std::endl;
    // The same while the storage hangs rather than fails (below), without
    // waiting for host 2 again: it is refused when the VM is already gone.

    // Back to normal: storage heals, the agent starts, gives back the
    // orphan of the VM that is gone and joins again.
    fs->set("ok");
    h1->agent->start();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(120s))) << h1->agent->log();
    EXPECT_TRUE(eventually([&] { return h1->client->ListLeases().empty(); }, 10s));
    // The helper acted; the restarted agent did not act again.
    EXPECT_EQ(h1->agent->log().find("lock failure: fs-c"), std::string::npos) << h1->agent->log();
}

// A VM stuck in D state on its own (hung) storage survives SIGKILL: its
// lease is not released while it exists, so sanlock keeps escalating (and
// with a watchdog would reset the host); once it exits the lease goes.
TEST_F(StorageLoss, AVmThatDoesNotDieKeepsItsLeaseUntilItIsGone) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    const std::string data = fs->mountpoint() + "/fs-d.data";
    write_file(root->path() + "/backing/fs-d.data", "x\n");
    // Reads its disk all the time: once the storage hangs, it waits in D state.
    Child vm({"/bin/sh", "-c", "while :; do read x < " + data + "; done"}, {}, root->path() + "/fs-d.log");
    ASSERT_EQ(h1->machined->create_machine("fs-d", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-d"}, 10s)) << h1->agent->log();

    auto t0 = Clock::now();
    fs->set("hang");
    auto failure = h1->client->wait_event("LockFailure", {"fs-d", "__LIBVIRT__DISKS__", "poweroff"}, slow(60s));
    ASSERT_TRUE(failure) << h1->agent->log();
    // Killed, but it cannot finish dying while its read hangs.
    EXPECT_EQ(vm.wait(3s), -1) << "the VM died after all: " << describe_status(vm.status());
    EXPECT_EQ(process_state(vm.pid()), 'D');
    int asked = kill_count(*h1, h1->agent->child().pid());
    EXPECT_FALSE(h1->client->wait_for("LeaseReleased", {"fs-d"}, 12s)) << "released under a VM that still exists";
    EXPECT_TRUE(eventually([&] { return h1->agent->log().find("machine fs-d is still there") != std::string::npos; },
                           5s))
        << h1->agent->log();
    int asked_later = kill_count(*h1, h1->agent->child().pid());
    EXPECT_GT(asked_later, asked) << "sanlock stopped escalating";
    EXPECT_EQ(h1->client->ListLeases().size(), 1u);
    std::cout << "VM in D state: lease kept " << seconds(failure->at, Clock::now()) << " s after LockFailure; sanlock "
              << "asked " << asked_later << " times to free it" << std::endl;

    fs->set("ok");
    int st = vm.wait(10s);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    auto released = h1->client->wait_event("LeaseReleased", {"fs-d"}, 15s);
    EXPECT_TRUE(released) << h1->agent->log();
    if (released)
        std::cout << "storage back -> VM exited -> lease released " << seconds(t0, released->at) << " s after the hang"
                  << std::endl;
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
}

// Lines of sanlock's log (where the helper's output goes) that say the
// helper applied `action` to `machine`.
int helper_actions(const Host &h, const std::string &machine, const std::string &action) {
    std::istringstream in(read_file(h.dir + "/sanlock/sanlock.log"));
    int n = 0;
    for (std::string line; std::getline(in, line);)
        n += line.find("lock-failure action " + action + " for machine " + machine + ":") != std::string::npos;
    return n;
}

// The agent dies, the storage fails, the helper acts alone; then the agent
// is started again while the lockspace is still failing. It must not act a
// second time (a paused VM stays paused by nobody's second SIGSTOP, a VM
// already killed is not "killed" again), must give back the orphan of the
// machine that is gone (orphans keep a failed lockspace), and must join
// again once the storage is back.
TEST_F(StorageLoss, AnAgentRestartedDuringTheFailureDoesNotActAgain) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-e.log");
    Child paused({"/bin/sleep", "600"}, {}, root->path() + "/fs-f.log");
    ASSERT_EQ(h1->machined->create_machine("fs-e", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_EQ(h1->machined->create_machine("fs-f", paused.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-e"}, 10s)) << h1->agent->log();
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-f"}, 10s)) << h1->agent->log();

    kill_agent(*h1);
    auto t0 = Clock::now();
    fs->set("eio");
    int st = vm.wait(slow(60s));
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    auto stopped = Clock::now();
    ASSERT_TRUE(eventually([&] { return process_state(paused.pid()) == 'T'; }, 5s)) << "fs-f was not paused";
    // The admin looks at the paused VM and lets it go on (SIGCONT): the
    // agent's start must not pause it again in this failure.
    paused.signal(SIGCONT);

    h1->agent->start();
    auto restarted = Clock::now();
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "failed", slow(30s))) << h1->agent->log();
    fs->set("ok");
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(120s))) << h1->agent->log();
    auto joined = Clock::now();
    EXPECT_EQ(helper_actions(*h1, "fs-e", "poweroff"), 1);
    EXPECT_EQ(helper_actions(*h1, "fs-f", "pause"), 1);
    EXPECT_EQ(h1->agent->log().find("lock failure: fs-e"), std::string::npos) << h1->agent->log();
    EXPECT_EQ(h1->agent->log().find("lock failure: fs-f: pause done"), std::string::npos) << h1->agent->log();
    EXPECT_NE(process_state(paused.pid()), 'T') << "paused a second time";
    // The paused machine kept running: its disk is leased again.
    EXPECT_TRUE(eventually([&] {
        auto leases = h1->client->ListLeases();
        return leases.size() == 1;
    }, 20s)) << h1->agent->log();
    std::cout << "agent killed; storage EIO -> VM stopped by the helper " << seconds(t0, stopped)
              << " s; agent restarted at " << seconds(t0, restarted) << " s; joined again "
              << seconds(t0, joined) << " s" << std::endl;
    paused.signal(SIGKILL);
}

// The pid of the process that owns `name` on the bus at `address`.
pid_t bus_name_owner_pid(const std::string &address, const std::string &name) {
    std::string out;
    run({"/usr/bin/busctl", "--address=" + address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
         "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", name},
        {}, &out, 5s);
    return out.rfind("u ", 0) == 0 ? std::atoi(out.c_str() + 2) : -1;
}

// The agent is running but machined does not answer (hung): the agent's
// KillMachine cannot complete, so it does not tell the helper "ok"; the
// helper acts on the VM directly (its cgroup, or its leader by pidfd).
TEST_F(StorageLoss, WhenMachinedHangsTheHelperStopsTheVmDirectly) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-g.log");
    ASSERT_EQ(h1->machined->create_machine("fs-g", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-g"}, 10s)) << h1->agent->log();
    pid_t machined = bus_name_owner_pid(h1->machined->address(), "org.freedesktop.machine1");
    ASSERT_GT(machined, 0);

    ASSERT_EQ(kill(machined, SIGSTOP), 0);
    auto t0 = Clock::now();
    fs->set("eio");
    int st = vm.wait(slow(60s));
    auto stopped = Clock::now();
    kill(machined, SIGCONT);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    EXPECT_NE(read_file(h1->dir + "/sanlock/sanlock.log")
                  .find("lock-failure action poweroff for machine fs-g: done directly"),
              std::string::npos);
    std::cout << "machined hung, agent running: storage EIO -> VM stopped directly by the helper "
              << seconds(t0, stopped) << " s" << std::endl;
    // machined answers again: the machine is gone, its lease released, the
    // lockspace joined again once the storage is back.
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"fs-g"}, 30s)) << h1->agent->log();
    fs->set("ok");
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
}

// As WithTheAgentKilled... with storage that hangs instead of failing:
// sanlock's renewals time out rather than fail. The VM is stopped while
// host 2 is still refused its disk.
TEST_F(StorageLoss, WithTheAgentKilledAndStorageHungTheVmIsStoppedWhileHost2IsStillRefused) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    Host &h2 = test_host(2, *root / "backing");
    ASSERT_TRUE(h2.client->wait_property("LockspaceState", "joined", 120s)) << h2.agent->log();
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/fs-h.log");
    ASSERT_EQ(h1->machined->create_machine("fs-h", vm.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-h"}, 10s)) << h1->agent->log();
    const std::string disk = root->path() + "/images/fs-h.img";

    kill_agent(*h1);
    auto t0 = Clock::now();
    fs->set("hang");
    int st = vm.wait(slow(60s));
    auto stopped = Clock::now();
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    // sanlock on host 2 waits to see whether host 1 is alive: the call
    // either is refused or times out; it must not succeed.
    std::string refused = intrude(h2, disk);
    EXPECT_NE(refused, "") << "host 2 could take the disk already";
    std::cout << "agent killed; storage hung -> VM stopped by the helper " << seconds(t0, stopped)
              << " s; host 2 not given the disk at " << seconds(t0, Clock::now()) << " s (" << refused << ")"
              << std::endl;
    fs->set("ok");
    h1->agent->start();
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(120s))) << h1->agent->log();
}

// --- lease versions: a paused VM never resumes over another host's writes ---------
//
// fs-s and fs-r (on_lockfailure: pause) hold their disks when this host's
// storage fails; the agent pauses both. It is then SIGKILLed while they are
// paused and started again (storage still failing): what it knows of them
// is the state file. Host 2 takes fs-s's disk (once sanlock there declares
// host 1 dead), writes to it and lets it go; fs-r's disk nobody touches.
// When the storage heals and the lockspace is joined again, fs-r's lease
// comes back at the version it had and fs-r goes on by itself; fs-s's
// lease moved on, so fs-s stays paused for good, is reported stale, and
// host 2's data stays as host 2 wrote it.
TEST_F(StorageLoss, APausedVmWhoseDiskAnotherHostTookIsStaleForGoodOneNobodyTouchedResumes) {
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(90s))) << h1->agent->log();
    Host &h2 = test_host(2, *root / "backing");
    ASSERT_TRUE(h2.client->wait_property("LockspaceState", "joined", 120s)) << h2.agent->log();
    std::filesystem::create_directories(*root / "images");
    const std::string stale_disk = root->path() + "/images/fs-s.img", fresh_disk = root->path() + "/images/fs-r.img";
    // Each VM writes its disk while it runs (not while it is paused).
    auto vm = [&](const std::string &name, const std::string &disk) {
        return Child({"/bin/sh", "-c", "while :; do echo \"" + name + " on host 1\" > " + disk + "; sleep 0.1; done"},
                     {}, root->path() + "/" + name + ".log");
    };
    Child stale = vm("fs-s", stale_disk), fresh = vm("fs-r", fresh_disk);
    ASSERT_EQ(h1->machined->create_machine("fs-s", stale.pid()).rfind("o ", 0), 0u);
    ASSERT_EQ(h1->machined->create_machine("fs-r", fresh.pid()).rfind("o ", 0), 0u);
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-s"}, 10s)) << h1->agent->log();
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"fs-r"}, 10s)) << h1->agent->log();
    const uint64_t stale_held = std::get<3>(h1->client->InspectDisk(stale_disk));
    const uint64_t fresh_held = std::get<3>(h1->client->InspectDisk(fresh_disk));

    auto t0 = Clock::now();
    fs->set("eio");
    for (const char *name : {"fs-s", "fs-r"})
        ASSERT_TRUE(h1->client->wait_for("LockFailure", {name, "__LIBVIRT__DISKS__", "pause"}, slow(60s)))
            << name << "\n" << h1->agent->log();
    ASSERT_TRUE(eventually([&] { return process_state(stale.pid()) == 'T' && process_state(fresh.pid()) == 'T'; },
                           10s));
    // The state file says what they held and at which version.
    std::string saved = read_file(h1->dir + "/agent/runtime/leases");
    EXPECT_NE(saved.find("paused fs-s "), std::string::npos) << saved;
    EXPECT_NE(saved.find("pin fs-r "), std::string::npos) << saved;

    kill_agent(*h1);
    h1->agent->start();
    EXPECT_TRUE(h1->client->wait_property("LockspaceState", "failed", slow(30s))) << h1->agent->log();

    // Host 2 may take fs-s's disk once it has declared host 1 dead.
    std::optional<Clock::time_point> taken;
    while (Clock::now() - t0 < slow(150s) && !taken) {
        if (error_of([&] { h2.client->AcquireDisk("host2-vm", stale_disk, "exclusive", {}); }).empty())
            taken = Clock::now();
        else
            std::this_thread::sleep_for(500ms);
    }
    ASSERT_TRUE(taken) << "host 2 never got the disk\n" << h2.agent->log();
    const std::string marker = "written by host 2 while fs-s was paused\n";
    write_file(stale_disk, marker);
    const uint64_t host2_took = std::get<3>(h2.client->InspectDisk(stale_disk));
    h2.client->ReleaseDisk("host2-vm", stale_disk);
    EXPECT_EQ(process_state(stale.pid()), 'T') << "fs-s ran while host 2 held its disk";

    fs->set("ok");
    auto healed = Clock::now();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined", slow(120s))) << h1->agent->log();
    auto stale_event = h1->client->wait_event("MachineStale", {"fs-s", stale_disk}, 30s);
    ASSERT_TRUE(stale_event) << h1->agent->log();
    EXPECT_EQ(stale_event->args[2], "0") << "the lease is free now; who took it is not known";
    ASSERT_TRUE(h1->client->wait_for("MachineResumed", {"fs-r"}, 30s)) << h1->agent->log();
    EXPECT_TRUE(eventually([&] { return process_state(fresh.pid()) != 'T'; }, 10s)) << "fs-r was not resumed";
    const uint64_t fresh_back = std::get<3>(h1->client->InspectDisk(fresh_disk));
    EXPECT_EQ(fresh_back, fresh_held + 1) << "taken back once, by this host";
    EXPECT_EQ(host2_took, stale_held + 1);
    EXPECT_EQ(std::get<3>(h1->client->InspectDisk(stale_disk)), host2_took) << "host 1 took the stale disk after all";

    // fs-s stays paused, and host 2's data stays as it wrote it: waited for
    // as long as a resume (fs-r's took well under a second) would take.
    EXPECT_FALSE(h1->client->wait_for("MachineResumed", {"fs-s"}, 3s));
    EXPECT_EQ(process_state(stale.pid()), 'T') << "fs-s was resumed";
    EXPECT_EQ(read_file(stale_disk), marker);
    for (const auto &m : h1->client->ListMachines()) {
        if (m.get<0>() == "fs-s") {
            EXPECT_FALSE(m.get<5>()) << "a stale machine is not protected";
        }
    }
    std::string status;
    run({required_env("VMLEASECTL"), "--no-pager", "status"}, {{"DBUS_SYSTEM_BUS_ADDRESS", h1->bus_address}}, &status,
        30s);
    EXPECT_NE(status.find("Stale: fs-s"), std::string::npos) << status;
    EXPECT_NE(status.find("  " + stale_disk + ": stale: "), std::string::npos) << status;
    std::string log = h1->agent->log();
    EXPECT_NE(log.find("machine fs-s is STALE"), std::string::npos) << log;
    EXPECT_NE(log.find("machine fs-r resumed"), std::string::npos) << log;
    // An admin (or orchestrator) cannot resume it either.
    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->ResumeMachine("fs-s", {}); }, &message), "org.vmlease.Error.LeaseStale");
    EXPECT_EQ(process_state(stale.pid()), 'T');
    std::cout << "lease versions: fs-s held at " << stale_held << ", host 2 took it at " << host2_took
              << " -> fs-s stale; fs-r held at " << fresh_held << ", taken back at " << fresh_back
              << "; storage back -> stale/resumed " << seconds(healed, stale_event->at) << " s; host 2 got the disk "
              << seconds(t0, *taken) << " s after the failure\n"
              << "ResumeMachine(fs-s): " << message << "\n--- vmleasectl status ---\n"
              << status << std::endl;
    for (std::istringstream in(log); std::getline(in, message);)
        if (message.find("STALE") != std::string::npos || message.find("resumed") != std::string::npos)
            std::cout << "journal: " << message << std::endl;
    stale.signal(SIGKILL);
    fresh.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"fs-r"}, 20s));
}

}  // namespace
