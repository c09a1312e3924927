// vmlease-bench: the figures of issue 9, each next to a baseline measured in
// the same run on the same daemons (real sanlock, real dbus-daemon, real
// systemd-machined, umockdev), printed as one table. Run it through
// bench/run, which builds it and sets the environment the harness needs.
#include "host.hpp"
#include "udev_testbed.hpp"

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <unistd.h>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace vmtest;
using Clock = std::chrono::steady_clock;

namespace {

// ---- reporting ----

struct Row {
    std::string figure, measured, baseline, ratio, target, met;
};
std::vector<Row> rows;
bool verbose = getenv("BENCH_VERBOSE") != nullptr;

void note(const std::string &s) {
    std::cerr << "[bench] " << s << std::endl;
}

std::string fixed(double v, int digits = 2) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string yes_no(bool met) { return met ? "yes" : "NO"; }

void add(const std::string &figure, const std::string &measured, const std::string &baseline = "-",
         const std::string &ratio = "-", const std::string &target = "-", const std::string &met = "-") {
    rows.push_back({figure, measured, baseline, ratio, target, met});
    note(figure + ": " + measured + " | " + baseline + " | " + ratio + " | " + target + " | " + met);
}

void print_table() {
    const char *heads[] = {"figure", "measured", "baseline (same run)", "ratio", "target", "met?"};
    size_t w[6];
    for (int i = 0; i < 6; i++)
        w[i] = std::string(heads[i]).size();
    for (const auto &r : rows) {
        const std::string *f[] = {&r.figure, &r.measured, &r.baseline, &r.ratio, &r.target, &r.met};
        for (int i = 0; i < 6; i++)
            w[i] = std::max(w[i], f[i]->size());
    }
    auto line = [&](const std::string *f[]) {
        std::string s = "|";
        for (int i = 0; i < 6; i++)
            s += " " + *f[i] + std::string(w[i] - f[i]->size(), ' ') + " |";
        std::cout << s << "\n";
    };
    std::string hs[6];
    for (int i = 0; i < 6; i++)
        hs[i] = heads[i];
    const std::string *hp[] = {&hs[0], &hs[1], &hs[2], &hs[3], &hs[4], &hs[5]};
    line(hp);
    std::string sep = "|";
    for (int i = 0; i < 6; i++)
        sep += std::string(w[i] + 2, '-') + "|";
    std::cout << sep << "\n";
    for (const auto &r : rows) {
        const std::string *f[] = {&r.figure, &r.measured, &r.baseline, &r.ratio, &r.target, &r.met};
        line(f);
    }
    std::cout.flush();
}

// ---- measuring ----

double ms_since(Clock::time_point t0, Clock::time_point t1 = Clock::now()) {
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

std::vector<double> time_calls(unsigned n, const std::function<void()> &call) {
    std::vector<double> out;
    out.reserve(n);
    for (unsigned i = 0; i < n; i++) {
        auto t0 = Clock::now();
        call();
        out.push_back(ms_since(t0));
    }
    return out;
}

// KiB of a /proc/PID/status field (VmRSS, VmHWM); -1 if unreadable.
long status_kib(pid_t pid, const std::string &field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0)
            return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
    return -1;
}

// CPU time (user + system) a process has used, in ms.
double cpu_ms(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream f(all.substr(close + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && f >> field; i++) {
        if (i == 14)
            ut = std::strtod(field.c_str(), nullptr);
        if (i == 15)
            st = std::strtod(field.c_str(), nullptr);
    }
    return (ut + st) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Where a process's resident memory is: KiB of Rss per mapping name, largest first.
std::string rss_breakdown(pid_t pid, size_t top = 8) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    std::map<std::string, long> by;
    std::string line, current = "[anon]";
    while (std::getline(in, line)) {
        if (line.rfind("Rss:", 0) == 0) {
            by[current] += std::strtol(line.c_str() + 4, nullptr, 10);
            continue;
        }
        // A mapping's header: "start-end perms offset dev inode [path]".
        auto dash = line.find('-');
        if (dash == std::string::npos || dash == 0 || line.find(':') < dash || !std::isxdigit(static_cast<unsigned char>(line[0])))
            continue;
        std::istringstream f(line);
        std::string range, perms, offset, dev, inode, path;
        f >> range >> perms >> offset >> dev >> inode;
        std::getline(f >> std::ws, path);
        if (path.empty())
            path = "[anon]";
        else if (auto slash = path.rfind('/'); slash != std::string::npos)
            path = path.substr(slash + 1);
        current = path;
    }
    std::vector<std::pair<long, std::string>> v;
    for (const auto &[k, kib] : by)
        v.emplace_back(kib, k);
    std::sort(v.rbegin(), v.rend());
    std::string out;
    for (size_t i = 0; i < v.size() && i < top; i++)
        out += v[i].second + " " + std::to_string(v[i].first) + " KiB; ";
    return out;
}

// Proportional set size (shared pages divided among their users), KiB.
long pss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Pss:", 0) == 0)
            return std::strtol(line.c_str() + 4, nullptr, 10);
    return -1;
}

std::string comm_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string s;
    std::getline(in, s);
    return s;
}

pid_t parent_of(pid_t pid) {
    long ppid = status_kib(pid, "PPid");
    return static_cast<pid_t>(ppid);
}

// vmleased's pid: the agent child itself, or (under a wrapper that does not
// exec) its descendant named vmleased.
pid_t agent_pid(Agent &agent) {
    pid_t top = agent.child().pid();
    if (comm_of(top) == "vmleased")
        return top;
    for (const auto &e : std::filesystem::directory_iterator("/proc")) {
        std::string name = e.path().filename();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])))
            continue;
        pid_t p = static_cast<pid_t>(std::stol(name));
        if (comm_of(p) != "vmleased")
            continue;
        for (pid_t a = p; a > 1; a = parent_of(a))
            if (a == top)
                return p;
    }
    return top;
}

size_t count_events(ManagerClient &c, const std::string &name, const std::string &owner_prefix = "",
                    Clock::time_point *last = nullptr) {
    size_t n = 0;
    for (const auto &e : c.events()) {
        if (e.name != name)
            continue;
        if (!owner_prefix.empty() && (e.args.empty() || e.args[0].rfind(owner_prefix, 0) != 0))
            continue;
        n++;
        if (last)
            *last = std::max(*last, e.at);
    }
    return n;
}

size_t held_count(ManagerClient &c, const std::string &owner_prefix) {
    size_t n = 0;
    for (const auto &l : c.ListLeases())
        if (l.get<2>().rfind(owner_prefix, 0) == 0 && l.get<4>() == "held")
            n++;
    return n;
}

std::string run_raw(const std::vector<std::string> &args, const SanlockDaemon &sanlock) {
    std::vector<std::string> argv{required_env("BENCH_RAW")};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    int rc = run(argv, sanlock.env(), &out, std::chrono::seconds(300));
    if (rc != 0)
        throw std::runtime_error("vmlease-bench-raw " + args[0] + " failed (" + std::to_string(rc) + "): " + out);
    return out;
}

double raw_value(const std::string &out, const std::string &key) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + " ", 0) == 0)
            return std::strtod(line.c_str() + key.size() + 1, nullptr);
    throw std::runtime_error("no " + key + " in: " + out);
}

std::vector<double> raw_list_ms(const std::string &out, const std::string &key) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + " ", 0) != 0)
            continue;
        std::istringstream vals(line.substr(key.size() + 1));
        std::vector<double> v;
        double us;
        while (vals >> us)
            v.push_back(us / 1000.0);
        return v;
    }
    throw std::runtime_error("no " + key + " in: " + out);
}

// With $BENCH_PERF_DIR set, `perf record -g` of vmleased around a figure.
struct PerfRecord {
    PerfRecord(pid_t pid, const std::string &name) {
        const char *dir = getenv("BENCH_PERF_DIR");
        if (!dir || !*dir)
            return;
        std::filesystem::create_directories(dir);
        std::string base = std::string(dir) + "/" + name;
        child = Child({"/usr/bin/perf", "record", "-g", "-F", "2000", "-p", std::to_string(pid), "-o", base + ".data"},
                      {}, base + ".log");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ~PerfRecord() {
        if (child.pid() > 0) {
            child.signal(SIGINT);
            child.wait(std::chrono::seconds(30));
        }
    }
    Child child;
};

std::string kib_str(long kib) { return kib < 0 ? "?" : fixed(kib / 1024.0, 2) + " MiB"; }

template <typename F>
void section(const std::string &name, F &&f) {
    note("--- " + name + " ---");
    auto t0 = Clock::now();
    try {
        f();
    } catch (const std::exception &e) {
        add(name + ": FAILED", e.what());
    }
    note(name + " took " + fixed(ms_since(t0) / 1000.0, 1) + " s");
}

// ---- the machined host: figures 1, 2, 3, 5, 6 ----

constexpr unsigned kVms = 100, kVmDisks = 2;
constexpr unsigned kRecMachines = 10, kRecDisks = 100;
constexpr unsigned kBulk = 1000;

std::string vm_name(unsigned i) {
    char b[32];
    snprintf(b, sizeof b, "bvm-%03u", i);
    return b;
}
std::string rec_name(unsigned i) { return "rec-" + std::to_string(i); }

std::string rules_yaml(const std::string &images) {
    std::string y = "machines:\n";
    for (unsigned i = 0; i < kVms; i++) {
        y += "  - match: \"" + vm_name(i) + "\"\n    disks:\n";
        for (unsigned d = 0; d < kVmDisks; d++)
            y += "      - {path: " + images + "/" + vm_name(i) + "-" + std::to_string(d) + ".img, mode: exclusive}\n";
    }
    for (unsigned i = 0; i < kRecMachines; i++) {
        y += "  - match: \"" + rec_name(i) + "\"\n    disks:\n";
        for (unsigned d = 0; d < kRecDisks; d++)
            y += "      - {path: " + images + "/" + rec_name(i) + "-" + std::to_string(d) + ".img, mode: exclusive}\n";
    }
    return y;
}

struct MachineStarter {
    explicit MachineStarter(const std::string &address)
        : proxy(sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(address), "org.freedesktop.machine1",
                                   "/org/freedesktop/machine1")) {
        proxy->uponSignal("MachineNew")
            .onInterface("org.freedesktop.machine1.Manager")
            .call([this](const std::string &name, const sdbus::ObjectPath &) {
                std::lock_guard lock(mutex);
                machine_new.emplace_back(name, Clock::now());
            });
        proxy->finishRegistration();
    }
    void create(const std::string &name, pid_t leader) {
        proxy->callMethodAsync("CreateMachine")
            .onInterface("org.freedesktop.machine1.Manager")
            .withArguments(name, std::vector<uint8_t>{}, std::string("vmlease-bench"), std::string("vm"),
                           static_cast<uint32_t>(leader), std::string(""),
                           std::vector<sdbus::Struct<std::string, sdbus::Variant>>{})
            .uponReplyInvoke([this, name](const sdbus::Error *error, const sdbus::ObjectPath &) {
                std::lock_guard lock(mutex);
                if (error)
                    errors.push_back(name + ": " + error->getMessage());
                replies++;
                last_reply = Clock::now();
            });
    }
    size_t new_count(const std::string &prefix, Clock::time_point *first, Clock::time_point *last = nullptr) {
        std::lock_guard lock(mutex);
        size_t n = 0;
        for (const auto &[name, at] : machine_new) {
            if (name.rfind(prefix, 0) != 0)
                continue;
            if (n == 0 || at < *first)
                *first = at;
            if (last && (n == 0 || at > *last))
                *last = at;
            n++;
        }
        return n;
    }

    std::unique_ptr<sdbus::IProxy> proxy;
    std::mutex mutex;
    std::vector<std::pair<std::string, Clock::time_point>> machine_new;
    std::vector<std::string> errors;
    unsigned replies = 0;
    Clock::time_point last_reply;
};

std::vector<Child> sleepers(const std::string &dir, unsigned n, const std::string &tag) {
    std::vector<Child> out;
    for (unsigned i = 0; i < n; i++)
        out.emplace_back(std::vector<std::string>{"/bin/sleep", "3600"}, std::map<std::string, std::string>{},
                         dir + "/" + tag + "-" + std::to_string(i) + ".log");
    return out;
}

void machined_host_figures() {
    Site site("vml-bench");
    std::string images = site.root / "images";
    std::string raw_dir = site.root / "raw";
    std::filesystem::create_directories(images);
    std::filesystem::create_directories(raw_dir);
    std::filesystem::create_directories(site.root / "vms");

    HostOptions o;
    o.with_machined = true;
    o.extra_yaml = rules_yaml(images) + discovery_yaml(images + "/win");
    std::filesystem::create_directories(images + "/win");
    // $RUNTIME_DIRECTORY is /run/vmlease, a tmpfs, on a real host; the
    // state file written there before every new lease must not pay for a
    // disk here that it would not pay for there.
    std::string runtime = "/dev/shm/vml-bench.XXXXXX";
    if (!mkdtemp(runtime.data()))
        throw std::runtime_error("mkdtemp " + runtime + ": " + strerror(errno));
    struct RemoveAtExit {
        std::string path;
        ~RemoveAtExit() { std::filesystem::remove_all(path); }
    } remove_runtime{runtime};
    o.agent_env["RUNTIME_DIRECTORY"] = runtime;
    auto t_host = Clock::now();
    Host h(site.root.path(), site.lease_dir(), 1, o);
    if (!h.client->wait_property("LockspaceState", "joined"))
        throw std::runtime_error("lockspace not joined: " + h.agent->log());
    note("host up and joined in " + fixed(ms_since(t_host) / 1000.0, 1) + " s");
    const std::string ls = "__LIBVIRT__DISKS__";
    pid_t apid = agent_pid(*h.agent);

    // 5. idle RSS
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    long rss_idle = status_kib(apid, "VmRSS");
    add("5. vmleased RSS idle, 110 machine rules (PSS)", kib_str(rss_idle) + " (" + kib_str(pss_kib(apid)) + ")",
        "-", "-", "< 8 MiB", yes_no(rss_idle >= 0 && rss_idle < 8 * 1024));
    note("idle RSS by mapping: " + rss_breakdown(apid) + "threads " + std::to_string(status_kib(apid, "Threads")));
    add("5. idle RSS: anonymous / file-backed (shared libs)",
        kib_str(status_kib(apid, "RssAnon")) + " / " + kib_str(status_kib(apid, "RssFile")));

    // 2. single lease AcquireDisk -> reply vs raw sanlock_acquire
    long rss_zero = -1;
    section("2. single lease", [&] {
        constexpr unsigned kCycles = 200;
        std::string disk = images + "/solo.img";
        std::ofstream(disk).put('x');
        h.client->clear_events();
        h.client->AcquireDisk("solo", disk, "exclusive", {});  // creates the lease file
        h.client->ReleaseDisk("solo", disk);
        // Interleaved rounds (agent, then raw) so that drift of this noisy
        // machine hits both alike.
        std::vector<double> acq, rel, raw_acq, raw_rel;
        constexpr unsigned kRounds = 4;
        for (unsigned round = 0; round < kRounds; round++) {
            {
                PerfRecord perf(apid, "single-lease-" + std::to_string(round));
                for (unsigned i = 0; i < kCycles / kRounds; i++) {
                    auto t0 = Clock::now();
                    h.client->AcquireDisk("solo", disk, "exclusive", {});
                    auto t1 = Clock::now();
                    h.client->ReleaseDisk("solo", disk);
                    acq.push_back(ms_since(t0, t1));
                    rel.push_back(ms_since(t1));
                }
            }
            std::string out = run_raw({"cycles", raw_dir, ls, "1", std::to_string(kCycles / kRounds + 1)}, h.sanlock);
            auto a = raw_list_ms(out, "acquire_us"), r = raw_list_ms(out, "release_us");
            raw_acq.insert(raw_acq.end(), a.begin() + 1, a.end());  // the first is a warm-up
            raw_rel.insert(raw_rel.end(), r.begin() + 1, r.end());
        }
        {
            // Signals the agent sends per AcquireDisk+ReleaseDisk cycle (each is a bus message).
            std::map<std::string, size_t> per;
            for (const auto &e : h.client->events())
                per[e.name]++;
            std::string counts;
            for (const auto &[name, n] : per)
                counts += name + " " + fixed(static_cast<double>(n) / (kCycles + 1), 1) + " ";
            note("signals per cycle: " + counts);
        }
        if (const char *dir = getenv("BENCH_STRACE_DIR"); dir && *dir) {
            std::filesystem::create_directories(dir);
            Child st({"/usr/bin/strace", "-f", "-tt", "-T", "-o", std::string(dir) + "/single-lease.strace", "-p",
                      std::to_string(apid)},
                     {}, std::string(dir) + "/strace.log");
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            for (int i = 0; i < 5; i++) {
                h.client->AcquireDisk("solo", disk, "exclusive", {});
                h.client->ReleaseDisk("solo", disk);
            }
            st.signal(SIGINT);
            st.wait(std::chrono::seconds(10));
        }
        double a50 = percentile(acq, 50), a99 = percentile(acq, 99);
        double r50 = percentile(raw_acq, 50), r99 = percentile(raw_acq, 99);
        add("2. AcquireDisk->reply p50 (200 cycles)", fixed(a50, 3) + " ms", "raw sanlock_acquire " + fixed(r50, 3) + " ms",
            fixed(a50 / r50, 2) + "x", "-", "-");
        add("2. AcquireDisk->reply p99", fixed(a99, 3) + " ms", "raw sanlock_acquire " + fixed(r99, 3) + " ms",
            fixed(a99 / r99, 2) + "x", "-", "-");
        double overhead = (a50 - r50) / r50 * 100.0;
        add("2. agent overhead per lease (p50)", fixed(a50 - r50, 3) + " ms", fixed(r50, 3) + " ms raw",
            fixed(overhead, 1) + "%", "< 10% of raw", yes_no(overhead < 10.0));
        add("2. ReleaseDisk->reply p50/p99", fixed(percentile(rel, 50), 3) + "/" + fixed(percentile(rel, 99), 3) + " ms",
            "raw sanlock_release " + fixed(percentile(raw_rel, 50), 3) + "/" + fixed(percentile(raw_rel, 99), 3) +
                " ms");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        rss_zero = status_kib(apid, "VmRSS");
    });

    // 3 + 5. 1,000 API leases: RSS at 100 and 1,000; ListLeases, property Get, GetId
    section("3/5. 1,000 leases", [&] {
        long rss100 = -1;
        auto t0 = Clock::now();
        for (unsigned i = 0; i < kBulk; i++) {
            h.client->AcquireDisk("bulk", images + "/bulk-" + std::to_string(i) + ".img", "exclusive", {});
            if (i + 1 == 100) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                rss100 = status_kib(apid, "VmRSS");
            }
        }
        note("1,000 AcquireDisk (serial, new lease files) in " + fixed(ms_since(t0) / 1000.0, 2) + " s");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        long rss1000 = status_kib(apid, "VmRSS");
        add("5. vmleased RSS at 0 / 100 / 1,000 leases",
            kib_str(rss_zero) + " / " + kib_str(rss100) + " / " + kib_str(rss1000));
        double per = static_cast<double>(rss1000 - rss_zero) / kBulk;
        add("5. RSS per held lease (0->1,000)", fixed(per, 2) + " KiB", "-", "-", "< 2 KiB", yes_no(per < 2.0));

        auto bus = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(h.bus_address), "org.freedesktop.DBus",
                                      "/org/freedesktop/DBus");
        auto getid = [&] {
            std::string id;
            bus->callMethod("GetId").onInterface("org.freedesktop.DBus").storeResultsTo(id);
        };
        time_calls(50, getid);
        auto t_id = Clock::now();
        auto ids = time_calls(2000, getid);
        double id_rate = 2000 / (ms_since(t_id) / 1000.0);
        size_t n_listed = 0;
        time_calls(5, [&] { n_listed = h.client->ListLeases().size(); });
        if (n_listed != kBulk)
            throw std::runtime_error("ListLeases returned " + std::to_string(n_listed) + " leases");
        std::vector<double> lists;
        double ll_rate, ll_cpu;
        {
            PerfRecord perf(apid, "listleases");
            auto t_ll = Clock::now();
            double cpu0 = cpu_ms(apid);
            lists = time_calls(300, [&] { (void)h.client->ListLeases(); });
            ll_rate = 300 / (ms_since(t_ll) / 1000.0);
            ll_cpu = (cpu_ms(apid) - cpu0) / 300;
        }
        time_calls(50, [&] { (void)h.client->LockspaceState(); });
        auto t_get = Clock::now();
        auto gets = time_calls(2000, [&] { (void)h.client->LockspaceState(); });
        double get_rate = 2000 / (ms_since(t_get) / 1000.0);
        double id50 = percentile(ids, 50), id99 = percentile(ids, 99);
        add("3. bus round trip GetId p50/p99 (baseline)", fixed(id50, 3) + "/" + fixed(id99, 3) + " ms, " +
                                                             fixed(id_rate, 0) + " calls/s");
        double l99 = percentile(lists, 99);
        add("3. ListLeases(1,000) p50/p99, calls/s",
            fixed(percentile(lists, 50), 3) + "/" + fixed(l99, 3) + " ms, " + fixed(ll_rate, 0) + "/s",
            "GetId " + fixed(id50, 3) + "/" + fixed(id99, 3) + " ms", fixed(percentile(lists, 50) / id50, 1) + "x (p50)",
            "p99 < 5 ms", yes_no(l99 < 5.0));
        add("3. ListLeases(1,000): vmleased CPU per call", fixed(ll_cpu, 2) + " ms");
        double g50 = percentile(gets, 50), g99 = percentile(gets, 99);
        add("3. Get(LockspaceState) p50/p99, calls/s",
            fixed(g50, 3) + "/" + fixed(g99, 3) + " ms, " + fixed(get_rate, 0) + "/s",
            "GetId " + fixed(id50, 3) + "/" + fixed(id99, 3) + " ms", fixed(g50 / id50, 2) + "x (p50)",
            "<= 1.5x round trip", yes_no(g50 / id50 <= 1.5));
        // A round trip through vmleased that does no work of ours: sd-bus
        // answers org.freedesktop.DBus.Peer.Ping inside the agent's loop.
        auto agent_peer = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(h.bus_address),
                                             "org.vmlease", "/org/vmlease");
        auto ping = [&] { agent_peer->callMethod("Ping").onInterface("org.freedesktop.DBus.Peer"); };
        time_calls(50, ping);
        auto pings = time_calls(2000, ping);
        double p50 = percentile(pings, 50), p99 = percentile(pings, 99);
        add("3. Peer.Ping to vmleased p50/p99 (2nd baseline)", fixed(p50, 3) + "/" + fixed(p99, 3) + " ms",
            "GetId " + fixed(id50, 3) + " ms", fixed(p50 / id50, 2) + "x", "-", "-");
        add("3. Get(LockspaceState) vs Ping to vmleased", fixed(g50, 3) + " ms", "Ping " + fixed(p50, 3) + " ms",
            fixed(g50 / p50, 2) + "x", "-", "-");
        auto t_rel = Clock::now();
        h.client->ReleaseMachine("bulk");
        note("ReleaseMachine(bulk) of 1,000 leases in " + fixed(ms_since(t_rel), 1) + " ms");
    });

    // 1. 100 machines x 2 disks at once vs serial raw, vs the same leases
    // by as many raw clients as the agent has connections, and vs the I/O
    // floor: the acquires' reads and writes replayed without sanlock by as
    // many threads.
    section("1. 100 VMs x 2 disks", [&] {
        std::string out = run_raw({"serial", raw_dir, ls, "1", std::to_string(kVms), std::to_string(kVmDisks)}, h.sanlock);
        double raw_ms = raw_value(out, "total_ms");
        const size_t want = kVms * kVmDisks;
        auto connections = [&] {
            unsigned n = h.agent->sanlock_connections();
            if (n == 0)
                throw std::runtime_error("the agent did not say how many sanlock connections it uses");
            return n;
        };
        const unsigned conns = connections();

        double par_ms;
        {
            std::vector<Child> par;
            auto tp = Clock::now();
            for (unsigned p = 0; p < conns; p++) {
                unsigned vms = kVms / conns + (p < kVms % conns ? 1 : 0);
                if (vms == 0)
                    continue;
                std::string d = raw_dir + "-p" + std::to_string(p);
                std::filesystem::create_directories(d);
                par.emplace_back(std::vector<std::string>{required_env("BENCH_RAW"), "serial", d, ls, "1",
                                                          std::to_string(vms), std::to_string(kVmDisks)},
                                 h.sanlock.env(), d + ".log");
            }
            for (auto &c : par) {
                int st = c.wait(std::chrono::seconds(120));
                if (st != 0)
                    throw std::runtime_error("a parallel raw client failed (" + std::to_string(st) +
                                             "): " + read_file(c.log_path()));
            }
            par_ms = ms_since(tp);
        }
        auto floor_of = [&](const std::string &tag, size_t read_bytes) {
            std::string d = site.root / ("replay-" + tag);
            std::filesystem::create_directories(d);
            return raw_value(run_raw({"replay", d, std::to_string(want), std::to_string(conns),
                                      std::to_string(read_bytes)},
                                     h.sanlock),
                             "total_ms");
        };
        double floor_ms = floor_of("2000", 1 << 20);
        double floor64_ms = floor_of("64", 64 * 512);

        // One round: the 100 VMs registered at once, until their 200 leases are held.
        auto round = [&](const std::string &tag, double &from_create) {
            auto vms = sleepers(site.root / "vms", kVms, "bvm" + tag);
            MachineStarter starter(h.bus_address);
            h.client->clear_events();
            PerfRecord perf(apid, "100-vms" + tag);
            auto t0 = Clock::now();
            for (unsigned i = 0; i < kVms; i++)
                starter.create(vm_name(i), vms[i].pid());
            bool all = eventually([&] { return count_events(*h.client, "LeaseAcquired", "bvm-") >= want; },
                                  std::chrono::seconds(120));
            Clock::time_point last = t0, first_new = t0, last_new = t0;
            size_t got = count_events(*h.client, "LeaseAcquired", "bvm-", &last);
            size_t news = starter.new_count("bvm-", &first_new, &last_new);
            {
                std::lock_guard lock(starter.mutex);
                if (!starter.errors.empty())
                    throw std::runtime_error("CreateMachine: " + starter.errors.front());
            }
            if (!all)
                throw std::runtime_error(std::to_string(got) + " of " + std::to_string(want) + " LeaseAcquired");
            from_create = ms_since(t0, last);
            double from_new = ms_since(first_new, last);
            double machined_ms;
            {
                std::lock_guard lock(starter.mutex);
                machined_ms = ms_since(t0, starter.last_reply);
            }
            note("round" + tag + ": MachineNew seen: " + std::to_string(news) + "; all CreateMachine answered after " +
                 fixed(machined_ms, 1) + " ms; 1st -> last MachineNew " + fixed(ms_since(first_new, last_new), 1) +
                 " ms (machined's own pace: no lease can be taken before its machine appears)");
            // The VMs end: their leases go.
            h.client->clear_events();
            for (auto &vm : vms)
                vm.signal(SIGKILL);
            for (auto &vm : vms)
                vm.wait(std::chrono::seconds(5));
            if (!eventually([&] { return held_count(*h.client, "bvm-") == 0; }, std::chrono::seconds(60)))
                note("warning: not every bvm lease was released");
            return from_new;
        };
        double from_create = 0;
        double from_new = round("", from_create);
        // The same VMs started again: their lease files exist now (a VM's
        // lease file stays when it stops), so only acquires are left.
        double again_create = 0;
        double again = round("-again", again_create);
        add("1. 100 VMs x 2 disks: 1st MachineNew -> last LeaseAcquired (" + std::to_string(conns) +
                " connections)",
            fixed(from_new, 1) + " ms", "raw serial (libvirt-style) " + fixed(raw_ms, 1) + " ms",
            fixed(raw_ms / from_new, 2) + "x faster", ">= 2.2x faster", yes_no(raw_ms / from_new >= 2.2));
        add("1. same, against the I/O floor (200 x 3 MiB read + 1.5 KiB written, " + std::to_string(conns) +
                " threads, no sanlock)",
            fixed(from_new, 1) + " ms", "floor " + fixed(floor_ms, 1) + " ms", fixed(from_new / floor_ms, 2) + "x the floor",
            "<= 1.5x the floor", yes_no(from_new / floor_ms <= 1.5));
        add("1. same 200 leases: " + std::to_string(conns) + " raw clients in parallel", fixed(par_ms, 1) + " ms",
            fixed(raw_ms, 1) + " ms serial", fixed(raw_ms / par_ms, 2) + "x faster", "-", "-");
        add("1. the same VMs again, their lease files there", fixed(again, 1) + " ms",
            "raw serial acquires only " + fixed(raw_value(out, "acquire_ms"), 1) + " ms",
            fixed(raw_value(out, "acquire_ms") / again, 2) + "x faster", "-", "-");
        add("1. same, from 1st CreateMachine sent", fixed(from_create, 1) + " ms", fixed(raw_ms, 1) + " ms",
            fixed(raw_ms / from_create, 2) + "x faster", "-", "-");
        add("1. per lease (agent, parallel / raw, serial)", fixed(from_new / want, 2) + " ms",
            fixed(raw_ms / want, 2) + " ms (create " + fixed(raw_value(out, "create_ms") / want, 2) + " + acquire " +
                fixed(raw_value(out, "acquire_ms") / want, 2) + ")",
            "-", "-", "-");

        // The rounds below start from no lease files, as the first did (the
        // files are removed: vmlease never formats a file again).
        auto remove_lease_files = [&] {
            for (unsigned i = 0; i < kVms; i++)
                for (unsigned d = 0; d < kVmDisks; d++)
                    std::filesystem::remove(std::get<1>(
                        h.client->InspectDisk(images + "/" + vm_name(i) + "-" + std::to_string(d) + ".img")));
        };
        // The agent restarted (to read its configuration, or sanlock's
        // worker count), `between` done while it is stopped.
        auto restart_agent = [&](const std::function<void()> &between) {
            h.agent->stop();
            between();
            h.agent->start();
            if (!h.client->wait_property("LockspaceState", "joined", std::chrono::seconds(60)))
                throw std::runtime_error("lockspace not joined after the restart: " + h.agent->log());
            apid = agent_pid(*h.agent);
        };

        // sanlock with 32 worker threads (-t 32): the agent sizes its
        // connections from them.
        remove_lease_files();
        restart_agent([&] {
            h.sanlock.stop();
            h.sanlock.start({"-t", "32"});
        });
        const unsigned conns32 = connections();
        double from_create32 = 0;
        double from_new32 = round("-t32", from_create32);
        add("1. the same with sanlock -t 32 (" + std::to_string(conns32) + " connections)", fixed(from_new32, 1) + " ms",
            "raw serial " + fixed(raw_ms, 1) + " ms", fixed(raw_ms / from_new32, 2) + "x faster", "-", "-");
        add("1. sanlock -t 32 against the I/O floor", fixed(from_new32, 1) + " ms", "floor " + fixed(floor_ms, 1) + " ms",
            fixed(from_new32 / floor_ms, 2) + "x the floor", "-", "-");
        restart_agent([&] {
            h.sanlock.stop();
            h.sanlock.start();
        });

        // lease_max_hosts: 64: the same VMs' lease files made anew with 64
        // host slots, the agent restarted to read the setting.
        remove_lease_files();
        const std::string config = h.agent->config_path(), wide = read_file(config);
        restart_agent([&] { write_file(config, wide + "lease_max_hosts: 64\n"); });
        double from_create64 = 0;
        double from_new64 = round("-64", from_create64);
        add("1. the same with lease_max_hosts: 64", fixed(from_new64, 1) + " ms",
            "raw serial (2000 slots) " + fixed(raw_ms, 1) + " ms", fixed(raw_ms / from_new64, 2) + "x faster",
            ">= 3x faster", yes_no(raw_ms / from_new64 >= 3.0));
        add("1. lease_max_hosts: 64 against its I/O floor (3 x 32 KiB read per lease)", fixed(from_new64, 1) + " ms",
            "floor " + fixed(floor64_ms, 1) + " ms", fixed(from_new64 / floor64_ms, 2) + "x the floor", "-", "-");
        restart_agent([&] { write_file(config, wide); });
    });

    // 7. the start window: a machine registered with machined opens its
    // image read-write a moment later (as qemu does); discovery must lease
    // it. Measured from just before the open (CLOCK_REALTIME, written by the
    // process) to LeaseAcquired arriving here.
    section("7. start window", [&] {
        constexpr unsigned kStarts = 10;
        std::vector<double> window;
        for (unsigned i = 0; i < kStarts; i++) {
            std::string name = "win-" + std::to_string(i), img = images + "/win/" + name + ".img";
            std::ofstream(img).put('x');
            std::string stamp = site.root / ("vms/" + name + ".opened");
            h.client->clear_events();
            // Registered first, opens 100-550 ms later: where in the scan cycle it lands varies.
            std::string delay = "0." + std::to_string(100 + 50 * i);
            Child vm({"/bin/bash", "-c",
                      "sleep " + delay + "; date +%s%N >'" + stamp + ".tmp'; mv '" + stamp + ".tmp' '" + stamp +
                          "'; exec 3<>'" + img + "'; exec sleep 600"},
                     {}, site.root / ("vms/" + name + ".log"));
            h.machined->create_machine(name, vm.pid());
            if (!h.client->wait_for("LeaseAcquired", {name, img}, std::chrono::seconds(10)))
                throw std::runtime_error(name + ": no lease: " + h.agent->log());
            auto leased = std::chrono::system_clock::now();
            double opened_ns = std::stod(read_file(stamp));
            double leased_ns = static_cast<double>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(leased.time_since_epoch()).count());
            window.push_back((leased_ns - opened_ns) / 1e6);
            vm.signal(SIGKILL);
            vm.wait(std::chrono::seconds(5));
            h.client->wait_for("LeaseReleased", {name, img}, std::chrono::seconds(10));
        }
        std::sort(window.begin(), window.end());
        add("7. start window: read-write open -> LeaseAcquired (median / max of 10)",
            fixed(window[window.size() / 2], 1) + " / " + fixed(window.back(), 1) + " ms",
            "2 s periodic scan: up to 2000 ms", fixed(2000.0 / window.back(), 1) + "x shorter (max)", "< 200 ms max",
            yes_no(window.back() < 200));
    });

    // 6. recovery: SIGKILL with 100, then 1,000 machine leases held, restart
    section("6. recovery", [&] {
        auto recs = sleepers(site.root / "vms", kRecMachines, "rec");
        MachineStarter starter(h.bus_address);
        unsigned started = 0;
        for (unsigned machines : {1u, kRecMachines}) {
            h.client->clear_events();
            for (; started < machines; started++)
                starter.create(rec_name(started), recs[started].pid());
            size_t want = machines * kRecDisks;
            std::string label = std::to_string(want) + " machine leases";
            auto t0 = Clock::now();
            if (!eventually([&] { return held_count(*h.client, "rec-") >= want; }, std::chrono::seconds(180)))
                throw std::runtime_error("only " + std::to_string(held_count(*h.client, "rec-")) + " of " + label +
                                         " acquired");
            note(std::to_string(machines) + " machine(s) x " + std::to_string(kRecDisks) + " disks held after " +
                 fixed(ms_since(t0), 1) + " ms");
            std::this_thread::sleep_for(std::chrono::milliseconds(300));

            h.agent->crash();  // a crash on purpose: exempt from the clean-exit check
            auto t_start = Clock::now();
            h.agent->start();
            auto t_ready = Clock::now();
            apid = agent_pid(*h.agent);
            Clock::time_point t_held{};
            bool ok = eventually(
                [&] {
                    try {
                        if (held_count(*h.client, "rec-") >= want) {
                            t_held = Clock::now();
                            return true;
                        }
                    } catch (const sdbus::Error &) {
                    }
                    return false;
                },
                std::chrono::seconds(120));
            add("6. SIGKILL with " + label + " -> restart -> READY=1", fixed(ms_since(t_start, t_ready), 1) + " ms");
            if (!ok) {
                add("6. recovery of " + label, "not reached in 120 s (" +
                                                   std::to_string(held_count(*h.client, "rec-")) + " held)",
                    "-", "-", "< 3 s after joined", "NO");
                return;
            }
            // sanlock's own view: resources held by the new vmleased process.
            std::string status;
            run({required_env("SANLOCK"), "client", "status"}, h.sanlock.env(), &status, std::chrono::seconds(30));
            size_t by_new = 0;
            std::istringstream lines(status);
            std::string line, pid_tag = " p " + std::to_string(apid);
            while (std::getline(lines, line))
                if (line.rfind("r ", 0) == 0 && line.size() >= pid_tag.size() &&
                    line.compare(line.size() - pid_tag.size(), pid_tag.size(), pid_tag) == 0)
                    by_new++;
            // The lockspace stays joined in sanlock while the agent is down, so
            // "after joined" is "after restart" here.
            double total = ms_since(t_start, t_held);
            add("6. restart -> " + label + " held again (reconciled)", fixed(total, 1) + " ms",
                "sanlock: " + std::to_string(by_new) + " held by new pid", "-", "< 3 s", yes_no(total < 3000));
        }
    });
}

// ---- 4. udev storm ----

void udev_figures() {
    constexpr unsigned kEvents = 10000;
    Site site("vml-bench-udev");
    UdevTestbed testbed(site.root / "testbed");
    testbed.add("sdb");
    testbed.add("sdc");
    HostOptions o;
    o.agent_wrapper = testbed.agent_wrapper();
    o.agent_env = testbed.agent_env();
    Host h(site.root.path(), site.lease_dir(), 1, o);
    if (!h.client->wait_property("LockspaceState", "joined"))
        throw std::runtime_error("lockspace not joined: " + h.agent->log());
    testbed.wait_for_listeners(1);
    pid_t apid = agent_pid(*h.agent);
    note("vmleased pid " + std::to_string(apid) + " (" + comm_of(apid) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    long idle = status_kib(apid, "VmRSS");
    note("idle RSS by mapping (minimal config): " + rss_breakdown(apid));
    add("5. vmleased RSS idle, minimal config (PSS)", kib_str(idle) + " (" + kib_str(pss_kib(apid)) + ")", "-", "-",
        "< 8 MiB", yes_no(idle >= 0 && idle < 8 * 1024));
    h.client->clear_events();

    struct Call {
        Clock::time_point sent, answered;
    };
    std::vector<Call> calls;
    std::atomic<bool> stop{false};
    std::thread caller([&] {
        ManagerClient client(h.bus_address);
        while (!stop) {
            Call c{Clock::now(), {}};
            (void)client.ListLeases();
            (void)client.LockspaceState();
            c.answered = Clock::now();
            calls.push_back(c);
        }
    });
    auto start = Clock::now();
    double send_s = testbed.burst(kEvents, "sdb", "sdc");
    bool all = eventually(
        [&] { return count_events(*h.client, "DeviceAdded") + count_events(*h.client, "DeviceRemoved") >= kEvents; },
        std::chrono::seconds(120));
    stop = true;
    caller.join();
    Clock::time_point last = start;
    size_t n = count_events(*h.client, "DeviceAdded", "", &last) + count_events(*h.client, "DeviceRemoved", "", &last);
    double secs = ms_since(start, last) / 1000.0;
    size_t during = 0;
    double worst = 0;
    for (const auto &c : calls) {
        if (c.sent >= start && c.answered <= last)
            during++;
        if (c.sent >= start && c.sent <= last)
            worst = std::max(worst, ms_since(c.sent, c.answered));
    }
    long hwm = status_kib(apid, "VmHWM");
    if (!all)
        add("4. udev storm", std::to_string(n) + " of " + std::to_string(kEvents) + " events signalled", "-", "-",
            "-", "NO");
    add("4. udev storm 10,000 events -> signals", fixed(secs, 2) + " s, " + fixed(n / secs, 0) + " events/s",
        "emulator sent them in " + fixed(send_s, 2) + " s", fixed(secs / send_s, 2) + "x",
        "< 2 s, D-Bus answering", yes_no(all && secs < 2.0 && during > 0));
    add("4. concurrent calls during storm: answered, worst", std::to_string(during) + ", " + fixed(worst, 1) + " ms");
    add("4. vmleased peak RSS (VmHWM) after storm", kib_str(hwm));
}

}  // namespace

int main() {
    signal(SIGPIPE, SIG_IGN);
    auto t0 = Clock::now();
    section("machined host", machined_host_figures);
    section("udev storm", udev_figures);
    note("whole run " + fixed(ms_since(t0) / 1000.0, 1) + " s");
    std::cout << "\nvmlease benchmarks (" << fixed(ms_since(t0) / 1000.0, 0)
              << " s; real sanlock, dbus-daemon, systemd-machined, umockdev; io_timeout 1)\n\n";
    print_table();
    (void)verbose;
    return 0;
}
