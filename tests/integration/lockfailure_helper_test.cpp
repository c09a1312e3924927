// vmlease-lockfailure on its own, without the agent (no lockfailure.sock):
// the fallback that applies the plan. A private system bus (dbus-test-runner's,
// tests/support/under-dbus-test-runner) with a machined stand-in
// (tests/support/machined_template.py) that either answers or, SIGSTOPped,
// takes every call and never answers; machines are child processes
// (/bin/sleep), some of them in a cgroup named after their scope when this
// host lets the test make cgroups.
//
// The deadline: other hosts may take this host's leases about 60 s after the
// killpath first runs, so every machine must be stopped well before; the
// helper must be done with 20 machines within 5 s even with machined hung.
#include "harness.hpp"
#include "lockfailure_plan.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace vmtest;
using vmlease::cgroup2_root;

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

std::string stat_of(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return close == std::string::npos ? "" : stat.substr(close + 2);
}

char process_state(pid_t pid) {
    std::string rest = stat_of(pid);
    return rest.empty() ? '?' : rest[0];
}

// Field 22 of /proc/PID/stat.
std::string start_time(pid_t pid) {
    std::istringstream fields(stat_of(pid));
    std::string f;
    for (int i = 3; i <= 22; i++)
        fields >> f;
    return f;
}

size_t count(const std::string &text, const std::string &what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        n++;
    return n;
}


// A cgroup of our own (removed at the end) with machine scopes in it.
class Cgroups {
public:
    Cgroups() {
        std::string root = cgroup2_root();
        if (root.empty())
            return;
        std::string dir = root + "/vmlease-lfh-" + std::to_string(getpid());
        if (mkdir(dir.c_str(), 0755) == 0)
            dir_ = dir;
    }
    ~Cgroups() {
        if (dir_.empty())
            return;
        for (const auto &s : scopes_)
            rmdir(s.c_str());
        rmdir(dir_.c_str());
    }
    bool available() const { return !dir_.empty(); }
    // Puts `pid` in a cgroup named `unit`; returns its path.
    std::string place(const std::string &unit, pid_t pid) {
        std::string scope = dir_ + "/" + unit;
        if (mkdir(scope.c_str(), 0755) != 0)
            return "";
        scopes_.push_back(scope);
        std::ofstream(scope + "/cgroup.procs") << pid << "\n";
        return scope;
    }

private:
    std::string dir_;
    std::vector<std::string> scopes_;
};

bool frozen(const std::string &cgroup) {
    return read_file(cgroup + "/cgroup.events").find("frozen 1") != std::string::npos;
}

struct Vm {
    std::string name, action, cgroup;
    bool stubborn = false;  // ignores SIGTERM
    Child child;
    double done_at = -1;  // seconds after the helper started; -1: not yet
};

// Killed (poweroff, terminate, restart) or stopped (pause).
bool acted_on(Vm &vm) {
    if (vm.action == "pause")
        return vm.cgroup.empty() ? process_state(vm.child.pid()) == 'T' : frozen(vm.cgroup);
    return !vm.child.running();
}

std::string plan_line(const Vm &vm, const std::string &unit) {
    return "machine " + vm.name + " " + vm.action + " " + std::to_string(vm.child.pid()) + " " +
           start_time(vm.child.pid()) + " " + unit + "\n";
}

Child start_vm(const std::string &dir, const std::string &name, bool stubborn) {
    if (!stubborn)
        return Child({"/bin/sleep", "600"}, {}, dir + "/" + name + ".log");
    Child c({"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 600"}, {}, dir + "/" + name + ".log");
    // Ignoring SIGTERM before it is in the plan.
    eventually([&] { return read_file("/proc/" + std::to_string(c.pid()) + "/comm") == "sleep\n"; }, 10s);
    return c;
}

void end(Child &c) {
    if (c.pid() > 0 && c.running()) {
        c.signal(SIGKILL);
        c.wait(10s);
    }
}

class LockFailureHelper : public ::testing::Test {
protected:
    void SetUp() override {
        machined = std::make_unique<DbusMock>(root / "machined", bus_address, required_env("MACHINED_TEMPLATE"),
                                              "org.freedesktop.machine1");
        runtime = root / "runtime";
        std::filesystem::create_directories(runtime);
    }
    void TearDown() override {
        kill(machined->pid(), SIGCONT);
        machined.reset();
    }
    // Runs the helper to its end; returns its exit status and log.
    int run_helper(std::string &log, const std::string &name, std::chrono::milliseconds timeout = 60s) {
        Child helper({required_env("VMLEASE_LOCKFAILURE"), runtime}, {}, root / (name + ".log"));
        int st = helper.wait(timeout);
        log = read_file(root / (name + ".log"));
        return st;
    }
    void add_machine(const std::string &name, pid_t leader) {
        std::string out;
        run({"/usr/bin/busctl", "--address=" + bus_address, "call", "org.freedesktop.machine1",
             "/org/freedesktop/machine1", "org.freedesktop.DBus.Mock", "AddMachine", "su", name,
             std::to_string(leader)},
            {}, &out, 10s);
    }

    TempDir root{"vml-lfhelper"};
    // The one private system bus dbus-test-runner started for this suite
    // (tests/support/under-dbus-test-runner); each case starts its own
    // machined stand-in on it.
    std::string bus_address = required_env("DBUS_SYSTEM_BUS_ADDRESS");
    std::unique_ptr<DbusMock> machined;
    std::string runtime;
};

// 20 machines, machined takes the calls and never answers: each is stopped
// directly, all within 5 s; a second run acts on none of them again.
TEST_F(LockFailureHelper, TwentyMachinesAreStoppedWithin5sWhileMachinedHangs) {
    Cgroups cgroups;
    if (!cgroups.available())
        std::cout << "no cgroup of our own here: every machine is acted on through its leader" << std::endl;
    std::vector<Vm> vms(20);
    std::string plan = "vmlease-lockfailure-plan 2\nbus " + bus_address + "\n";
    for (int i = 0; i < 20; i++) {
        Vm &vm = vms[i];
        vm.name = (i < 10 ? "vm-0" : "vm-") + std::to_string(i);
        vm.action = i == 3 || i == 8 || i == 13 ? "terminate" : i == 18 ? "restart" : i == 4 || i == 15 ? "pause"
                                                                                                          : "poweroff";
        vm.stubborn = i == 18 || i == 3;
        vm.child = start_vm(root.path(), vm.name, vm.stubborn);
        std::string unit = "machine-" + vm.name + ".scope";
        // Even ones in a scope cgroup; odd ones share the test's cgroup,
        // which the helper must leave alone (it would kill this test).
        if (i % 2 == 0 && cgroups.available())
            vm.cgroup = cgroups.place(unit, vm.child.pid());
        plan += plan_line(vm, unit);
    }
    // Not to be touched: an ignore machine, and a plan line whose leader pid
    // now belongs to another process (its start time differs).
    Vm ignored, innocent;
    ignored.name = "vm-ignore", ignored.action = "ignore";
    innocent.name = "vm-reused", innocent.action = "poweroff";
    ignored.child = start_vm(root.path(), ignored.name, false);
    innocent.child = start_vm(root.path(), innocent.name, false);
    plan += plan_line(ignored, "-");
    plan += "machine vm-reused poweroff " + std::to_string(innocent.child.pid()) + " " +
            std::to_string(std::stoull(start_time(innocent.child.pid())) + 1) + " machine-vm-reused.scope\n";
    write_file(runtime + "/lockfailure-plan", plan);

    kill(machined->pid(), SIGSTOP);  // takes connections and calls, answers none
    auto t0 = Clock::now();
    Child helper({required_env("VMLEASE_LOCKFAILURE"), runtime}, {}, root / "helper-1.log");
    double last = 0, last_willing = 0;  // last_willing: of those that do not ignore SIGTERM
    size_t done = 0;
    while (done < vms.size() && seconds(t0, Clock::now()) < 15) {
        for (auto &vm : vms)
            if (vm.done_at < 0 && acted_on(vm)) {
                vm.done_at = seconds(t0, Clock::now());
                last = std::max(last, vm.done_at);
                if (!vm.stubborn)
                    last_willing = std::max(last_willing, vm.done_at);
                done++;
            }
        usleep(5000);
    }
    int st = helper.wait(30s);
    std::string log = read_file(root / "helper-1.log");
    std::cout << "20 machines, machined hung: last acted on after " << last << " s (" << done
              << " of 20 acted on, all but the 2 that ignore SIGTERM after " << last_willing << " s; " << (cgroups.available() ? "10 in cgroups, 10 through the leader" : "no cgroups")
              << "); helper exited after " << seconds(t0, Clock::now()) << " s" << std::endl;
    for (auto &vm : vms) {
        EXPECT_GE(vm.done_at, 0) << vm.name << " (" << vm.action << ") was not acted on\n" << log;
        EXPECT_LE(vm.done_at, 5.0) << vm.name << " (" << vm.action << ")\n" << log;
        // One line each (a stubborn one gets a second: the SIGKILL after SIGTERM).
        EXPECT_EQ(count(log, "did not answer; lock-failure action " + vm.action + " for machine " + vm.name + ": "), 1u)
            << vm.name << "\n" << log;
        EXPECT_EQ(count(log, "for machine " + vm.name + ": "), vm.stubborn ? 2u : 1u) << vm.name << "\n" << log;
    }
    EXPECT_EQ(st, 0) << describe_status(st) << "\n" << log;
    EXPECT_TRUE(ignored.child.running());
    EXPECT_TRUE(innocent.child.running()) << "a reused pid was killed\n" << log;
    EXPECT_NE(log.find("for machine vm-reused: nothing to do: the leader, pid " +
                       std::to_string(innocent.child.pid()) + ", is gone"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("for machine vm-ignore: nothing to do"), std::string::npos) << log;
    EXPECT_NE(log.find("for machine vm-00: done directly: "), std::string::npos) << log;
    if (cgroups.available()) {
        EXPECT_NE(log.find("for machine vm-00: done directly: cgroup.kill on"), std::string::npos) << log;
        EXPECT_NE(log.find("for machine vm-04: done directly: cgroup.freeze on"), std::string::npos) << log;
        EXPECT_NE(log.find("for machine vm-18: still running 1000 ms after SIGTERM: cgroup.kill"), std::string::npos)
            << log;
    }
    EXPECT_NE(log.find("for machine vm-01: done directly: SIGKILL to the leader"), std::string::npos) << log;
    EXPECT_NE(log.find("for machine vm-15: done directly: SIGSTOP to the leader"), std::string::npos) << log;
    EXPECT_NE(log.find("for machine vm-03: still running 1000 ms after SIGTERM: SIGKILL to the leader"),
              std::string::npos)
        << log;
    std::cout << "--- the helper's log ---\n" << log << "---" << std::endl;
    std::string acted = read_file(runtime + "/lockfailure-acted");
    for (const auto &vm : vms)
        EXPECT_EQ(count(acted, "machine " + vm.name + " " + vm.action + "\n"), 1u) << acted;

    // The admin resumes the paused machines; sanlock runs the helper again
    // (machined still hung): nothing is acted on twice.
    Vm &frozen_vm = vms[4], &stopped_vm = vms[15];
    if (!frozen_vm.cgroup.empty())
        std::ofstream(frozen_vm.cgroup + "/cgroup.freeze") << "0\n";
    else
        frozen_vm.child.signal(SIGCONT);
    stopped_vm.child.signal(SIGCONT);
    ASSERT_TRUE(eventually([&] { return !acted_on(frozen_vm) && !acted_on(stopped_vm); }, 5s));
    auto t1 = Clock::now();
    std::string log2;
    int st2 = run_helper(log2, "helper-2");
    double second = seconds(t1, Clock::now());
    EXPECT_EQ(st2, 0) << describe_status(st2) << "\n" << log2;
    EXPECT_NE(log2.find("already acted on by an earlier run, not again: vm-00, vm-01"), std::string::npos) << log2;
    EXPECT_EQ(log2.find("lock-failure action"), std::string::npos) << log2;
    usleep(300000);
    EXPECT_FALSE(acted_on(frozen_vm)) << "paused again\n" << log2;
    EXPECT_FALSE(acted_on(stopped_vm)) << "paused again\n" << log2;
    EXPECT_TRUE(innocent.child.running());
    std::cout << "second run on the same runtime directory: " << second << " s, acted on nothing" << std::endl;

    for (auto &vm : vms)
        end(vm.child);
    end(ignored.child);
    end(innocent.child);
}

// machined answers: it does the work (the plan gives it no leader to act on
// directly); a machine it does not know is acted on directly.
TEST_F(LockFailureHelper, MachinedDoesTheWorkWhenItAnswers) {
    std::vector<Vm> vms(4);
    const char *actions[] = {"poweroff", "terminate", "pause", "poweroff"};
    std::string plan = "vmlease-lockfailure-plan 2\nbus " + bus_address + "\n";
    for (int i = 0; i < 4; i++) {
        Vm &vm = vms[i];
        vm.name = "m-" + std::to_string(i);
        vm.action = actions[i];
        vm.child = start_vm(root.path(), vm.name, false);
        if (i < 3) {
            add_machine(vm.name, vm.child.pid());
            plan += "machine " + vm.name + " " + vm.action + " 0 0 -\n";  // only machined can find it
        } else {
            plan += plan_line(vm, "-");  // machined does not know it
        }
    }
    write_file(runtime + "/lockfailure-plan", plan);
    auto t0 = Clock::now();
    std::string log;
    int st = run_helper(log, "helper");
    EXPECT_EQ(st, 0) << describe_status(st) << "\n" << log;
    for (auto &vm : vms)
        EXPECT_TRUE(eventually([&] { return acted_on(vm); }, 5s)) << vm.name << "\n" << log;
    std::cout << "machined answering: 4 machines acted on, helper done after " << seconds(t0, Clock::now()) << " s"
              << std::endl;
    for (int i = 0; i < 3; i++)
        EXPECT_NE(log.find("for machine " + vms[i].name + ": done through machined"), std::string::npos) << log;
    EXPECT_NE(log.find("for machine m-3: done directly: SIGKILL to the leader"), std::string::npos) << log;
    EXPECT_NE(log.find("No machine 'm-3' known"), std::string::npos) << log;
    for (auto &vm : vms)
        end(vm.child);
}

// A record left from an earlier lock failure (the agent did not clear it)
// does not make the helper skip a machine; a fresh one does.
TEST_F(LockFailureHelper, AnOldRecordIsNotTrusted) {
    Vm vm;
    vm.name = "again", vm.action = "poweroff";
    vm.child = start_vm(root.path(), vm.name, false);
    write_file(runtime + "/lockfailure-plan",
               "vmlease-lockfailure-plan 2\nbus " + bus_address + "\n" + plan_line(vm, "-"));
    std::string record = runtime + "/lockfailure-acted";
    write_file(record, "machine again poweroff\n");
    std::string log;
    EXPECT_EQ(run_helper(log, "helper-fresh"), 0) << log;
    EXPECT_NE(log.find("already acted on by an earlier run, not again: again"), std::string::npos) << log;
    EXPECT_TRUE(vm.child.running());

    timespec old[2] = {{time(nullptr) - 3600, 0}, {time(nullptr) - 3600, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, record.c_str(), old, 0), 0);
    EXPECT_EQ(run_helper(log, "helper-old"), 0) << log;
    EXPECT_NE(log.find("by an earlier lock failure: removing it"), std::string::npos) << log;
    EXPECT_NE(log.find("for machine again: done directly: SIGKILL to the leader"), std::string::npos) << log;
    EXPECT_TRUE(eventually([&] { return !vm.child.running(); }, 5s)) << log;
    EXPECT_EQ(read_file(record), "machine again poweroff\n");
}

// No plan the helper can trust: it says so and fails (sanlock runs it again).
TEST_F(LockFailureHelper, AVersion1PlanIsNotTrusted) {
    Child vm = start_vm(root.path(), "old", false);
    write_file(runtime + "/lockfailure-plan", "vmlease-lockfailure-plan 1\nmachine old poweroff\n");
    std::string log;
    int st = run_helper(log, "helper");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << describe_status(st) << "\n" << log;
    EXPECT_NE(log.find("there is no usable plan"), std::string::npos) << log;
    EXPECT_TRUE(vm.running());
    end(vm);
}

}  // namespace
