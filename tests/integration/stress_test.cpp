// Randomized two-host stress test: two real vmleased on two real sanlock
// daemons sharing one lease directory, the real systemd-machined on each,
// machines starting and stopping on both with overlapping disks, and the
// agents SIGKILLed (or stopped) at random. An independent checker reads
// lease ownership straight from the lease files (sanlock_read_resource_owners,
// through a third sanlock daemon that joins nothing) and fails the test if
//   - a lease ever names more than one host, or
//   - a disk is in use by running machines on two hosts beyond the
//     protection window, or
//   - a running machine's disk is not owned by its host beyond the window
//     (a machine once protected must stay protected, agent crash or not), or
//   - two machines' writes to one disk interleave: every machine, once past
//     the window, appends "host name seq" lines to its disk while it runs, so
//     a second writer shows as lines of one machine, then another's, then the
//     first's again (what a double ownership would do to a real disk).
// Machines also start and end while their host's agent is down.
// The seed is fixed (VMLEASE_STRESS_SEED overrides it), the run time bounded
// (VMLEASE_STRESS_SECONDS, default 60).
#include "core/disk_path.hpp"
#include "host.hpp"

extern "C" {
#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
}

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace vmtest;
using Clock = std::chrono::steady_clock;

namespace {

// How long after a machine starts, or after its host's agent is READY again,
// the machine may run before its disk must be leased (or the machine
// stopped, on a conflict): one discovery interval (2 s), sanlock's acquire
// (up to 2 s when it must wait out another host's lease), machined's
// terminate, and slack for a loaded 2-core machine under ASan.
constexpr auto kWindow = 10s;
constexpr int kDisks = 5;
// When a machine starts writing its disk: past the time a conflicting one
// takes to be stopped, even when it started while its agent was down (at
// most 3 s here) — but soon enough that most machines live to write.
constexpr auto kWriteAfter = 8s;

unsigned env_number(const char *name, unsigned fallback) {
    const char *v = getenv(name);
    return v && *v ? static_cast<unsigned>(std::stoul(v)) : fallback;
}

// Hosts owning `resource` according to its lease file; empty if free.
std::vector<uint64_t> owners_on_disk(const std::string &lease_dir, const std::string &resource) {
    alignas(sanlk_resource) unsigned char buf[sizeof(sanlk_resource) + sizeof(sanlk_disk)]{};
    auto *res = reinterpret_cast<sanlk_resource *>(buf);
    auto *disk = reinterpret_cast<sanlk_disk *>(buf + offsetof(sanlk_resource, disks));
    snprintf(res->lockspace_name, sizeof res->lockspace_name, "%s", "__LIBVIRT__DISKS__");
    snprintf(res->name, sizeof res->name, "%s", resource.c_str());
    res->num_disks = 1;
    res->flags = SANLK_RES_ALIGN1M | SANLK_RES_SECTOR512;
    snprintf(disk->path, sizeof disk->path, "%s", (lease_dir + "/" + resource).c_str());
    std::vector<uint64_t> out;
    if (access(disk->path, F_OK) != 0)
        return out;  // never leased yet
    sanlk_host *hosts = nullptr;
    int count = 0;
    int rv = sanlock_read_resource_owners(res, 0, &hosts, &count);
    if (rv < 0)
        throw std::runtime_error("sanlock_read_resource_owners(" + resource + "): " + std::to_string(rv));
    for (int i = 0; i < count; i++)
        out.push_back(hosts[i].host_id);
    free(hosts);
    return out;
}

// A VM-like process: holds its disk open read-write (so discovery leases
// it) and, after kWriteAfter, appends "H<host> <name> <seq>"
// lines to it until it is stopped.
Child writer_process(const std::string &dir, const std::string &name, size_t host, const std::string &disk) {
    std::string script = "exec 3<>'" + disk + "'; sleep " + std::to_string(kWriteAfter.count()) +
                         "; i=0; while :; do echo \"H" + std::to_string(host + 1) + " " + name +
                         " $i\" >>'" + disk + "'; i=$((i+1)); sleep 0.05; done";
    return Child({"/bin/bash", "-c", script}, {}, dir + "/" + name + ".log");
}

// Writers of a disk in the order their lines are in it; a writer whose lines
// resume after another's is a second writer while it still wrote.
struct WriteLog {
    size_t lines = 0;
    std::vector<std::string> writers;  // in order of their first line
    std::vector<std::string> interleaved;  // the first few
    size_t interleavings = 0;
};
WriteLog read_write_log(const std::string &disk) {
    WriteLog log;
    std::ifstream in(disk);
    std::string line, current;
    std::set<std::string> finished;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string host, name;
        if (!(words >> host >> name) || host.empty() || host[0] != 'H')
            continue;  // the byte the test put there first
        log.lines++;
        std::string who = host + " " + name;
        if (who == current)
            continue;
        if (!current.empty())
            finished.insert(current);
        if (finished.count(who) && ++log.interleavings <= 5)
            log.interleaved.push_back(who + " wrote again after another writer (line " + std::to_string(log.lines) +
                                      ")");
        else
            log.writers.push_back(who);
        current = who;
    }
    return log;
}

struct VM {
    std::string name;
    size_t host;  // 0 or 1
    int disk;
    Clock::time_point started;
    bool protected_seen = false;
    // An earlier machine on the same host used the same disk: until its
    // window is over, the lease the checker sees may be that one's orphan.
    bool has_predecessor = false;
    Child child;
};

class Stress : public HostsSuite<Stress> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-stress");
        std::filesystem::create_directories(*root / "images");
        // The checker's own sanlock daemon: it joins no lockspace and only
        // reads lease files for this process.
        checker = std::make_unique<SanlockDaemon>(*root / "checker");
        setenv("SANLOCK_RUN_DIR", checker->run_dir().c_str(), 1);
        HostOptions o;
        o.with_machined = true;
        o.extra_yaml = "discovery:\n  open_files: true\n  include: [\"" + (*root / "images") + "/*\"]\n";
        start_hosts({o, o});
    }
    static void TearDownTestSuite() {
        HostsSuite<Stress>::TearDownTestSuite();
        checker.reset();
    }
    static inline std::unique_ptr<SanlockDaemon> checker;
};

TEST_F(Stress, NoDiskIsEverHeldByTwoHostsAndRunningMachinesStayProtected) {
    const unsigned seed = env_number("VMLEASE_STRESS_SEED", 20261121);
    const auto run_for = std::chrono::seconds(env_number("VMLEASE_STRESS_SECONDS", 60));
    std::mt19937 rng(seed);
    std::vector<std::string> disks, resources;
    for (int i = 0; i < kDisks; i++) {
        disks.push_back(*root / ("images/disk" + std::to_string(i) + ".img"));
        std::ofstream(disks.back()) << "x\n";
        resources.push_back(lease_name(disks.back()));
    }

    std::mutex mutex;  // guards everything below it
    std::vector<std::unique_ptr<VM>> vms;
    Clock::time_point agent_ready[2] = {Clock::now(), Clock::now()};
    bool agent_up[2] = {true, true};
    std::vector<std::string> violations;
    size_t samples = 0, machine_checks = 0, protected_checks = 0;

    std::atomic<bool> done{false};
    std::thread checker_thread([&] {
        while (!done) {
            std::vector<std::vector<uint64_t>> owners;
            try {
                for (const auto &r : resources)
                    owners.push_back(owners_on_disk(lease_dir, r));
            } catch (const std::exception &e) {
                std::lock_guard lock(mutex);
                violations.push_back(std::string("checker could not read: ") + e.what());
                return;
            }
            auto now = Clock::now();
            std::lock_guard lock(mutex);
            samples++;
            std::vector<std::set<size_t>> writing(kDisks);  // hosts with a machine past its window
            for (int d = 0; d < kDisks; d++)
                if (owners[d].size() > 1)
                    violations.push_back("disk" + std::to_string(d) + " held by " + std::to_string(owners[d].size()) +
                                         " hosts at once");
            for (auto &vm : vms) {
                if (!vm->child.running())
                    continue;
                machine_checks++;
                const auto &o = owners[vm->disk];
                bool owned = o.size() == 1 && o[0] == vm->host + 1;
                bool past_window = agent_up[vm->host] && now > std::max(vm->started, agent_ready[vm->host]) + kWindow;
                if (owned && (!vm->has_predecessor || past_window))
                    vm->protected_seen = true;
                if (vm->protected_seen || past_window) {
                    protected_checks++;
                    writing[vm->disk].insert(vm->host);
                    if (!owned)
                        violations.push_back(vm->name + " runs on host " + std::to_string(vm->host + 1) +
                                             " but disk" + std::to_string(vm->disk) + " is " +
                                             (o.empty() ? std::string("free") : "owned by host " + std::to_string(o[0])) +
                                             (vm->protected_seen ? " (it was protected before)" : ""));
                }
            }
            for (int d = 0; d < kDisks; d++)
                if (writing[d].size() > 1)
                    violations.push_back("disk" + std::to_string(d) + " in use on both hosts past the window");
            if (violations.size() > 20)
                return;  // enough to see what went wrong
            std::this_thread::sleep_for(50ms);
        }
    });

    std::map<std::string, size_t> ops;
    unsigned next_vm = 0;
    // `why` non-empty: counted as such (e.g. while its agent is down).
    auto start_machine = [&](size_t host, const std::string &why) {
        int disk = std::uniform_int_distribution<int>(0, kDisks - 1)(rng);
        {
            // Overlaps are across hosts: two machines on one host sharing a
            // disk are one host's business (the second is stopped by
            // on_conflict), and the on-disk owner cannot tell them apart.
            std::lock_guard lock(mutex);
            if (std::any_of(vms.begin(), vms.end(), [&](const std::unique_ptr<VM> &v) {
                    return v->host == host && v->disk == disk && v->child.running();
                })) {
                ops["start skipped (disk busy on that host)"]++;
                return;
            }
        }
        auto vm = std::make_unique<VM>();
        vm->name = "s" + std::to_string(next_vm++);
        vm->host = host;
        vm->disk = disk;
        {
            std::lock_guard lock(mutex);
            vm->has_predecessor = std::any_of(vms.begin(), vms.end(), [&](const std::unique_ptr<VM> &v) {
                return v->host == host && v->disk == disk;
            });
        }
        vm->child = writer_process(root->path(), vm->name, host, disks[vm->disk]);
        std::string out = hosts[host]->machined->create_machine(vm->name, vm->child.pid());
        EXPECT_EQ(out.rfind("o ", 0), 0u) << out;
        vm->started = Clock::now();
        std::lock_guard lock(mutex);
        vms.push_back(std::move(vm));
        ops[why.empty() ? "machine started" : "machine started " + why]++;
    };
    auto stop_machine = [&](std::optional<size_t> on_host, const std::string &why) {
        std::lock_guard lock(mutex);
        std::vector<VM *> running;
        for (auto &vm : vms)
            if (vm->child.running() && (!on_host || vm->host == *on_host))
                running.push_back(vm.get());
        if (running.empty())
            return;
        running[std::uniform_int_distribution<size_t>(0, running.size() - 1)(rng)]->child.signal(SIGKILL);
        ops[why.empty() ? "machine stopped" : "machine stopped " + why]++;
    };
    // While `host`'s agent is down, machines start and end on it.
    auto while_down = [&](std::chrono::milliseconds how_long, size_t host) {
        auto until = Clock::now() + how_long;
        while (Clock::now() < until) {
            int dice = std::uniform_int_distribution<int>(0, 99)(rng);
            if (dice < 30)
                start_machine(host, "while its agent was down");
            else if (dice < 40)
                stop_machine(host, "while its agent was down");
            std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 500)(rng)));
        }
    };
    auto start = Clock::now();
    while (Clock::now() - start < run_for) {
        {
            std::lock_guard lock(mutex);
            if (violations.size() > 20)
                break;
        }
        int dice = std::uniform_int_distribution<int>(0, 99)(rng);
        size_t host = std::uniform_int_distribution<size_t>(0, 1)(rng);
        Host &h = *hosts[host];
        if (dice < 45) {
            start_machine(host, "");
        } else if (dice < 62) {
            stop_machine(std::nullopt, "");
        } else if (dice < 92) {
            {
                std::lock_guard lock(mutex);
                agent_up[host] = false;
            }
            bool graceful = dice >= 87;
            if (graceful)
                h.agent->stop();  // must exit 0 (Agent::stop checks)
            else
                h.agent->crash();
            ops[graceful ? "agent stopped (SIGTERM)" : "agent crashed (SIGKILL)"]++;
            while_down(std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 3000)(rng)), host);
            h.agent->start();
            std::lock_guard lock(mutex);
            agent_ready[host] = Clock::now();
            agent_up[host] = true;
        } else {
            // Both hosts' agents down at once.
            {
                std::lock_guard lock(mutex);
                agent_up[0] = agent_up[1] = false;
            }
            for (auto &hh : hosts)
                hh->agent->crash();
            ops["both agents crashed"]++;
            while_down(std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 2000)(rng)), host);
            for (size_t i = 0; i < hosts.size(); i++) {
                hosts[i]->agent->start();
                std::lock_guard lock(mutex);
                agent_ready[i] = Clock::now();
                agent_up[i] = true;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 400)(rng)));
    }

    // Wind down: every machine stops; then no lease may be left anywhere.
    {
        std::lock_guard lock(mutex);
        for (auto &vm : vms)
            if (vm->child.running()) {
                vm->child.signal(SIGKILL);
                vm->child.wait(10s);
            }
    }
    done = true;
    checker_thread.join();
    bool all_free = eventually(
        [&] {
            for (const auto &r : resources)
                if (!owners_on_disk(lease_dir, r).empty())
                    return false;
            return true;
        },
        30s);
    size_t lines = 0, writers = 0;
    for (int d = 0; d < kDisks; d++) {
        WriteLog log = read_write_log(disks[d]);
        lines += log.lines;
        writers += log.writers.size();
        for (const auto &i : log.interleaved)
            violations.push_back("disk" + std::to_string(d) + ": " + i);
        if (log.interleavings > log.interleaved.size())
            violations.push_back("disk" + std::to_string(d) + ": " + std::to_string(log.interleavings) +
                                 " interleavings in all");
    }
    ops["lines written by machines past the window"] = lines;
    ops["machines that wrote"] = writers;
    // Our stops are SIGKILL; on_conflict=terminate reaches a machine as SIGTERM.
    size_t terminated = 0;
    for (auto &vm : vms) {
        int status = vm->child.wait(1s);
        terminated += status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
    }
    ops["machines terminated by on_conflict"] = terminated;

    std::cout << "seed " << seed << ", " << run_for.count() << " s, " << vms.size() << " machines\n";
    for (const auto &[what, n] : ops)
        std::cout << "  " << what << ": " << n << "\n";
    std::cout << "  ownership samples: " << samples << ", machine checks: " << machine_checks
              << " (of which past the window or once protected: " << protected_checks << ")\n"
              << "  violations: " << violations.size() << std::endl;
    for (const auto &v : violations)
        ADD_FAILURE() << v;
    EXPECT_TRUE(all_free) << "leases left held after every machine stopped";
    EXPECT_GT(ops["agent crashed (SIGKILL)"] + ops["both agents crashed"], 0u);
    EXPECT_GT(protected_checks, 0u);
    EXPECT_GT(lines, 0u) << "no machine wrote: the writer check saw nothing";
    EXPECT_GT(ops["machine started while its agent was down"] + ops["machine stopped while its agent was down"], 0u);
    for (auto &h : hosts)
        EXPECT_TRUE(eventually([&] { return h->client->ListLeases().empty(); }, 20s)) << h->agent->log();
}

}  // namespace
