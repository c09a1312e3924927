// No machine runs unprotected without vmlease acting on it and saying so:
// two hosts with real sanlock daemons, the real systemd-machined (systemd1
// stand-in whose FreezeUnit uses the real cgroup v2 freezer) and the real
// vmleased, which lease every image a machine holds open read-write.
//
// What is promised (README "Machines without a lease", vmlease.yaml(5)):
// - a disk of a running machine that is not held is asked for again with
//   back-off (1 s doubling to 30 s) until it is held or the machine ends, and
//   nobody else on the host is granted it meanwhile;
// - on_conflict: pause freezes the machine's unit while another host holds
//   its disk, and thaws it once the lease is granted;
// - on_unprotected applies once a machine has been unprotected for
//   unprotected_grace seconds;
// - every such machine is named: MachineUnprotected, the journal, Protected in
//   ListMachines, vmleasectl status and the Warnings property.
#include "host.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

using namespace vmtest;
using namespace std::chrono_literals;

namespace {

// Rules by machine name; every other machine gets on_unprotected: warn with a
// long grace, so only the test that wants it sees on_unprotected act.
const std::string kRules = R"(on_unprotected: warn
unprotected_grace: 600
machines:
  - match: "warn-*"
    disks: []
    on_conflict: warn
  - match: "pause-*"
    disks: []
    on_conflict: pause
  - match: "doomed-*"
    disks: []
    on_unprotected: terminate
    unprotected_grace: 3
)";

class Unprotected : public MachineHostsSuite<Unprotected> {
protected:
    static void SetUpTestSuite() { start("vml-unprot", kRules); }

    static std::string lease_file(const std::string &disk) { return lease_dir + "/" + lease_name(disk); }
    // A lease file sanlock refuses: the right size, no lease in it.
    static void plant_bad_lease_file(const std::string &disk) {
        std::ofstream out(lease_file(disk), std::ios::binary | std::ios::trunc);
        std::string junk(1 << 20, '\x5a');
        out.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    // A machine on `h` holding `disk` open read-write.
    static Child machine(Host &h, const std::string &name, const std::string &disk) {
        Child vm = vm_process(root->path(), name, disk);
        h.machined->create_machine(name, vm.pid());
        return vm;
    }
    // Host 1's machine `name` holds `disk`; host 2's machine `refused` then
    // starts on it and meets the conflict.
    static std::pair<Child, Child> conflict(const std::string &name, const std::string &refused,
                                            const std::string &disk) {
        Child holder = machine(*h1, name, disk);
        EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {name, disk}, 10s)) << h1->agent->log();
        Child vm = machine(*h2, refused, disk);
        EXPECT_TRUE(h2->client->wait_for("LeaseConflict", {refused, disk, "1"}, 10s)) << h2->agent->log();
        return {std::move(holder), std::move(vm)};
    }
    // Host 1's machine ends; returns when its lease is released.
    static std::chrono::steady_clock::time_point end_holder(Child &holder, const std::string &name,
                                                            const std::string &disk) {
        holder.signal(SIGKILL);
        EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {name, disk}, 10s));
        return std::chrono::steady_clock::now();
    }
    static std::string ctl(Host &h, const std::vector<std::string> &args) {
        std::vector<std::string> argv{required_env("VMLEASECTL")};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string out;
        run(argv, {{"DBUS_SYSTEM_BUS_ADDRESS", h.bus_address}}, &out, 30s);
        return out;
    }
    static std::string warnings(Host &h) {
        std::string all;
        for (const auto &w : h.client->Get("org.vmlease.Manager", "Warnings").get<std::vector<std::string>>())
            all += w + "\n";
        return all;
    }
    // The cgroup v2 freezer's word on the process's cgroup: "1" frozen, "0" not.
    static std::string frozen(pid_t pid) {
        std::string root = std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup"
                                                                                          : "/sys/fs/cgroup/unified";
        std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
        std::string path;
        for (std::string line; std::getline(in, line);)
            if (line.rfind("0::", 0) == 0)
                path = line.substr(3);
        std::ifstream events(root + path + "/cgroup.events");
        for (std::string line; std::getline(events, line);)
            if (line.rfind("frozen ", 0) == 0)
                return line.substr(7);
        return "?";
    }
    // The state letter of /proc/PID/stat: 'S' sleeping, 'T' stopped.
    static char process_state(pid_t pid) {
        std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
        auto close = stat.rfind(')');
        return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
    }
    static double seconds_since(std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }
};

TEST_F(Unprotected, ALeaseFileSanlockRefusesIsRetriedUntilRepairedAndNobodyElseGetsTheDisk) {
    const std::string disk = image("refused.img");
    plant_bad_lease_file(disk);
    Child vm = machine(*h1, "bad-1", disk);

    auto unprotected = h1->client->wait_event("MachineUnprotected", {"bad-1", disk}, 15s);
    ASSERT_TRUE(unprotected) << h1->agent->log();
    std::cout << "MachineUnprotected: " << unprotected->args[2] << std::endl;
    EXPECT_NE(unprotected->args[2].find("failed"), std::string::npos) << unprotected->args[2];
    EXPECT_FALSE(listed_protected(*h1, "bad-1"));
    std::string status = ctl(*h1, {"status"});
    std::cout << "--- vmleasectl status ---\n" << status << "--- vmleasectl machines ---\n"
              << ctl(*h1, {"machines"}) << std::flush;
    EXPECT_NE(status.find("Unprotected: bad-1"), std::string::npos) << status;
    EXPECT_NE(status.find(disk + ": failed"), std::string::npos) << status;
    EXPECT_NE(warnings(*h1).find("bad-1"), std::string::npos) << warnings(*h1);
    EXPECT_NE(h1->agent->log().find("machine bad-1 is not protected"), std::string::npos);

    // Meanwhile nobody else on this host is granted the disk the VM writes.
    std::string message;
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("intruder", disk, "exclusive", {}); }, &message),
              "org.vmlease.Error.LeaseHeld")
        << message;

    // Several retries fail meanwhile; then the file is repaired (removed: the
    // agent creates and formats a new one).
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("intruder", disk, "exclusive", {}); }),
              "org.vmlease.Error.LeaseHeld");
    std::filesystem::remove(lease_file(disk));
    auto repaired = std::chrono::steady_clock::now();
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"bad-1", disk}, 35s)) << h1->agent->log();
    std::cout << "repaired -> lease held: " << seconds_since(repaired) << " s (back-off bound 30 s)" << std::endl;
    EXPECT_TRUE(vm.running());
    EXPECT_TRUE(eventually([&] { return listed_protected(*h1, "bad-1"); }, 5s));
    EXPECT_TRUE(eventually([&] { return warnings(*h1).find("bad-1") == std::string::npos; }, 5s)) << warnings(*h1);
    EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("intruder", disk, "exclusive", {}); }),
              "org.vmlease.Error.LeaseHeld");

    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"bad-1", disk}, 10s));
}

TEST_F(Unprotected, UnderWarnAMachineRefusedItsDiskGetsItOnceTheHolderLetsGo) {
    const std::string disk = image("warned.img");
    auto machines = conflict("holder-w", "warn-2", disk);
    Child &holder = machines.first, &vm = machines.second;
    ASSERT_FALSE(HasFailure());
    EXPECT_TRUE(h2->client->wait_for("MachineUnprotected", {"warn-2", disk}, 5s));
    EXPECT_FALSE(listed_protected(*h2, "warn-2"));
    // Retries meet the holder again; it keeps running (warn).
    std::this_thread::sleep_for(4s);
    EXPECT_TRUE(vm.running());

    auto released = end_holder(holder, "holder-w", disk);
    ASSERT_TRUE(h2->client->wait_for("LeaseAcquired", {"warn-2", disk}, 35s)) << h2->agent->log();
    std::cout << "holder released -> waiting machine's lease: " << seconds_since(released) << " s" << std::endl;
    EXPECT_TRUE(eventually([&] { return listed_protected(*h2, "warn-2"); }, 5s));
    vm.signal(SIGKILL);
    EXPECT_TRUE(h2->client->wait_for("LeaseReleased", {"warn-2", disk}, 10s));
}

TEST_F(Unprotected, UnderPauseAMachineIsFrozenWhileTheDiskIsHeldElsewhereAndThawedOnceItIsGranted) {
    const std::string disk = image("paused.img");
    auto machines = conflict("holder-p", "pause-2", disk);
    Child &holder = machines.first, &vm = machines.second;
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(eventually([&] { return frozen(vm.pid()) == "1"; }, 10s)) << h2->agent->log();
    EXPECT_TRUE(vm.running());
    // A stray SIGCONT does not undo the freezer (the kernel's answer: the
    // cgroup stays frozen whatever signal its tasks get).
    kill(vm.pid(), SIGCONT);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(frozen(vm.pid()), "1");
    EXPECT_NE(ctl(*h2, {"status"}).find("Unprotected: pause-2"), std::string::npos);
    const uint64_t held_by_host1 = std::get<3>(h1->client->InspectDisk(disk));

    auto released = end_holder(holder, "holder-p", disk);
    ASSERT_TRUE(h2->client->wait_for("LeaseAcquired", {"pause-2", disk}, 35s)) << h2->agent->log();
    EXPECT_TRUE(eventually([&] { return frozen(vm.pid()) == "0"; }, 10s)) << h2->agent->log();
    // It never held the lease: nothing pinned it, and it is announced as resumed.
    EXPECT_TRUE(h2->client->wait_for("MachineResumed", {"pause-2"}, 10s)) << h2->agent->log();
    const uint64_t taken_by_host2 = std::get<3>(h2->client->InspectDisk(disk));
    EXPECT_EQ(taken_by_host2, held_by_host1 + 1);
    std::cout << "holder released -> frozen machine leased and thawed: " << seconds_since(released)
              << " s; lease version " << held_by_host1 << " (host 1) -> " << taken_by_host2 << " (host 2)"
              << std::endl;
    EXPECT_TRUE(vm.running());
    vm.signal(SIGKILL);
    EXPECT_TRUE(h2->client->wait_for("LeaseReleased", {"pause-2", disk}, 10s));
}

// Where systemd cannot freeze (no unified cgroup hierarchy), the machine's
// processes are stopped with SIGSTOP instead, said at critical level, and
// continued once the lease is granted.
TEST_F(Unprotected, WhereSystemdCannotFreezeAPausedMachineIsStoppedAndContinued) {
    auto refuse = [&](bool on) {
        ASSERT_EQ(run({"/usr/bin/busctl", "--address=" + h2->bus_address, "call", "org.freedesktop.systemd1",
                       "/org/freedesktop/systemd1", "org.freedesktop.DBus.Mock", "SetFreezeRefused", "b",
                       on ? "true" : "false"}),
                  0);
    };
    refuse(true);
    const std::string disk = image("stopped.img");
    auto machines = conflict("holder-s", "pause-s", disk);
    Child &holder = machines.first, &vm = machines.second;
    ASSERT_FALSE(HasFailure());
    EXPECT_TRUE(eventually([&] { return process_state(vm.pid()) == 'T'; }, 10s)) << h2->agent->log();
    EXPECT_EQ(frozen(vm.pid()), "0");
    EXPECT_NE(h2->agent->log().find("cannot freeze machine pause-s"), std::string::npos) << h2->agent->log();
    end_holder(holder, "holder-s", disk);
    ASSERT_TRUE(h2->client->wait_for("LeaseAcquired", {"pause-s", disk}, 35s)) << h2->agent->log();
    EXPECT_TRUE(eventually([&] { return process_state(vm.pid()) == 'S'; }, 10s)) << process_state(vm.pid());
    refuse(false);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h2->client->wait_for("LeaseReleased", {"pause-s", disk}, 10s));
}

TEST_F(Unprotected, AMachineLeftUnprotectedPastItsGraceIsTerminatedAndSaysWhy) {
    const std::string disk = image("doomed.img");
    plant_bad_lease_file(disk);
    Child vm = vm_process(root->path(), "doomed", disk);
    // The grace runs from the first request for the disk, which follows the
    // machine's registration.
    auto registered = std::chrono::steady_clock::now();
    h1->machined->create_machine("doomed-1", vm.pid());
    auto first = h1->client->wait_event("MachineUnprotected", {"doomed-1", disk}, 15s);
    ASSERT_TRUE(first) << h1->agent->log();
    EXPECT_TRUE(vm.running());
    // The grace (3 s) ends: terminate, with the signal and the journal entry.
    ASSERT_NE(vm.wait(20s), -1) << "not terminated\n" << h1->agent->log();
    double after = seconds_since(registered);
    std::cout << "registered -> terminated: " << after << " s (grace 3 s)" << std::endl;
    EXPECT_GE(after, 3.0) << "stopped before its grace was over";
    bool acted = false;
    for (const auto &e : h1->client->events())
        if (e.name == "MachineUnprotected" && e.args.size() == 3 && e.args[0] == "doomed-1" &&
            e.args[2].size() > 11 && e.args[2].compare(e.args[2].size() - 11, 11, "; terminate") == 0)
            acted = true;
    EXPECT_TRUE(acted) << "no MachineUnprotected saying it was terminated";
    EXPECT_NE(h1->agent->log().find("machine doomed-1 stayed unprotected for 3 s"), std::string::npos)
        << h1->agent->log();
    EXPECT_NE(h1->agent->log().find("on_unprotected=terminate: terminating it"), std::string::npos);
    std::filesystem::remove(lease_file(disk));
}

}  // namespace
