// vmlease-lockfailure: the killpath program sanlock runs (as root, args
// split on whitespace) when this host can no longer renew its lockspace and
// the leases held by vmleased's connections are at risk. Its one argument is
// the agent's runtime directory. sanlock runs it once for each client that
// holds a lease in the failed lockspace (vmleased's connections and
// vmlease-holder), never again for the same client, and other hosts may
// take this host's leases about 60 s after: every machine must be stopped
// well before.
//
// It tells the agent (lockfailure.sock) and exits at once if the agent
// answers within kAgentTimeoutMs. Otherwise (agent stopped, hung, crashed)
// it applies each machine's on_lockfailure itself from the plan the agent
// keeps written next to the socket, so protection never depends on the
// agent being alive:
//
//  1. through machined, every call sent at once on one connection, each with
//     a kMachinedTimeoutUsec timeout;
//  2. directly, for every machine whose call failed or timed out (machined
//     hung or absent): on the machine's cgroup (cgroup.kill / cgroup.freeze,
//     or a signal to every process in cgroup.procs), or, when no cgroup of
//     the machine can be found, on its leader alone through a pidfd taken
//     while the leader still has the start time of the plan, so a reused pid
//     is never signalled. A terminate or restart done directly is followed,
//     kTerminateGraceMs later, by SIGKILL for whatever is left: the leases
//     are lost whether or not the VM agrees to stop, and a VM still running
//     when another host takes them corrupts its disks.
//
// Each machine acted on is recorded in lockfailure-acted; later runs skip it
// (sanlock runs the helper repeatedly, and a machine an admin resumed after
// a pause must not be paused again). The agent clears the record when its
// lockspace is joined again; a record older than kRecordMaxAge is dropped
// in case it did not. One run at a time acts: a run started
// while another still acts waits for it (at most kRunLockWaitMs).
//
// Logging: main(), fall_back() and report() log; every other function
// returns what happened and never logs.
#include "lockfailure_plan.hpp"
#include "log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace vmlease;
using Clock = std::chrono::steady_clock;

constexpr int kAgentTimeoutMs = 2000;
constexpr uint64_t kMachinedTimeoutUsec = 1'500'000;
constexpr int kTerminateGraceMs = 1000;
constexpr int kRunLockWaitMs = 5000;
constexpr const char *kRunLockFile = "lockfailure-helper.lock";
// A record last written longer ago than this is from an earlier lock failure
// (one lasts at most a couple of minutes: the lockspace comes back, or the
// watchdog resets the host) that the agent did not clear (clear_acted on
// rejoin): it must not make this one skip a machine.
constexpr auto kRecordMaxAge = std::chrono::minutes(10);

// "ok" from the agent, or false.
bool tell_agent(const std::string &runtime_dir) {
    sockaddr_un addr{};
    std::string path = runtime_dir + "/" + kLockFailureSocket;
    if (path.size() >= sizeof addr.sun_path)
        return false;
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
        send(fd, "lockfailure\n", 12, MSG_NOSIGNAL) == 12) {
        pollfd p{fd, POLLIN, 0};
        char buf[8] = {};
        ok = poll(&p, 1, kAgentTimeoutMs) == 1 && recv(fd, buf, sizeof buf - 1, 0) > 0 &&
             std::strncmp(buf, "ok", 2) == 0;
    }
    close(fd);
    return ok;
}

// --- what happened to one machine ------------------------------------------------

struct Outcome {
    std::string result;     // for the log
    bool recorded = false;  // acted on, or nothing is left to act on: never again
    bool failed = false;
};

struct Work {
    const LockFailurePlan::Entry *entry = nullptr;
    // Through machined: the call's reply (or error) once it came.
    bool answered = false;
    std::string machined_error;  // empty: machined did it
    Outcome outcome;
    // Direct, terminate/restart: what to SIGKILL if it outlives the grace.
    std::string cgroup;
    int pidfd = -1;
};

// --- machined: every call at once ----------------------------------------------

int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *) {
    auto *w = static_cast<Work *>(userdata);
    w->answered = true;
    const sd_bus_error *e = sd_bus_message_get_error(reply);
    w->machined_error = !e ? "" : e->message ? e->message : e->name ? e->name : "error";
    return 0;
}

// Sends each machine's call and waits until all are answered or timed out;
// the machines not done are left with `machined_error` set. Returns "" or why
// machined could not be asked at all.
std::string ask_machined(const std::string &bus_address, const std::vector<Work *> &work) {
    for (Work *w : work)
        w->machined_error = "not answered within " + std::to_string(kMachinedTimeoutUsec / 1000) + " ms";
    sd_bus *bus = nullptr;
    int r = bus_address.empty() ? sd_bus_open_system(&bus) : sd_bus_new(&bus);
    if (r >= 0 && !bus_address.empty()) {
        r = sd_bus_set_address(bus, bus_address.c_str());
        if (r >= 0)
            r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
            r = sd_bus_start(bus);
    }
    if (r < 0) {
        sd_bus_unref(bus);
        for (Work *w : work)
            w->machined_error = std::string("no bus: ") + std::strerror(-r);
        return std::string("cannot connect to the system bus: ") + std::strerror(-r);
    }
    auto deadline = Clock::now() + std::chrono::microseconds(kMachinedTimeoutUsec + 200'000);
    for (Work *w : work) {
        const auto &m = *w->entry;
        sd_bus_message *call = nullptr;
        const LockFailureEffect &effect = m.effect();
        r = sd_bus_message_new_method_call(bus, &call, "org.freedesktop.machine1", "/org/freedesktop/machine1",
                                           "org.freedesktop.machine1.Manager",
                                           effect.terminate ? "TerminateMachine" : "KillMachine");
        if (r >= 0)
            r = effect.terminate ? sd_bus_message_append(call, "s", m.machine.c_str())
                                 : sd_bus_message_append(call, "ssi", m.machine.c_str(), "all", effect.signal);
        // A floating slot: the bus owns it, and `w` outlives the bus.
        if (r >= 0)
            r = sd_bus_call_async(bus, nullptr, call, on_reply, w, kMachinedTimeoutUsec);
        sd_bus_message_unref(call);
        if (r < 0) {
            w->answered = true;
            w->machined_error = std::string("cannot send: ") + std::strerror(-r);
        }
    }
    auto unanswered = [&] {
        size_t n = 0;
        for (const Work *w : work)
            n += !w->answered;
        return n;
    };
    std::string trouble;
    while (unanswered() > 0) {
        auto now = Clock::now();
        if (now >= deadline)
            break;
        r = sd_bus_process(bus, nullptr);
        if (r < 0) {
            trouble = std::string("the bus connection failed: ") + std::strerror(-r);
            break;
        }
        if (r > 0)
            continue;
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
        r = sd_bus_wait(bus, static_cast<uint64_t>(left));
        if (r < 0 && r != -EINTR) {
            trouble = std::string("the bus connection failed: ") + std::strerror(-r);
            break;
        }
    }
    // No flush: a hung bus must not hold the helper. Unanswered calls stay failed.
    sd_bus_close_unref(bus);
    return trouble;
}

// --- directly: cgroups and pidfds ---------------------------------------------------

int pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) { return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }


bool is_dir(const std::string &path) { return access((path + "/cgroup.procs").c_str(), F_OK) == 0; }

bool write_one(const std::string &path) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, "1", 1) == 1;
    close(fd);
    return ok;
}

std::vector<pid_t> cgroup_pids(const std::string &cgroup) {
    std::vector<pid_t> pids;
    std::ifstream in(cgroup + "/cgroup.procs");
    pid_t pid;
    while (in >> pid)
        pids.push_back(pid);
    return pids;
}

// Signals every process in the cgroup; for SIGKILL and SIGSTOP again until
// none is new (a process forking meanwhile). Returns how many were signalled.
size_t signal_cgroup(const std::string &cgroup, int sig) {
    std::set<pid_t> done;
    for (int round = 0; round < 10; round++) {
        size_t fresh = 0;
        for (pid_t pid : cgroup_pids(cgroup))
            if (done.insert(pid).second) {
                fresh++;
                kill(pid, sig);
            }
        if (fresh == 0 || sig == SIGTERM)
            break;
    }
    return done.size();
}

// The machine's own cgroup: the one of its verified leader, cut at the
// component named after its unit (libvirt puts qemu in sub-cgroups of the
// scope), else machine.slice/UNIT. Never a cgroup that is not named after
// the unit: the leader of a machine without a scope shares its cgroup with
// others (a service, a test), and those must not be stopped with it.
std::string machine_cgroup(const std::string &root, const LockFailurePlan::Entry &m, int leader_pidfd) {
    if (root.empty() || m.unit.empty())
        return "";
    if (leader_pidfd >= 0) {
        std::ifstream in("/proc/" + std::to_string(m.leader) + "/cgroup");
        std::string line, path;
        while (std::getline(in, line))
            if (line.rfind("0::", 0) == 0)
                path = line.substr(3);
        // Still alive, so that was our leader's file and not a new process's.
        bool alive = pidfd_send_signal(leader_pidfd, 0) == 0;
        std::string needle = "/" + m.unit;
        for (size_t at = path.find(needle); alive && at != std::string::npos; at = path.find(needle, at + 1)) {
            size_t end = at + needle.size();
            if (end == path.size() || path[end] == '/')
                return root + path.substr(0, end);
        }
    }
    std::string slice = root + "/machine.slice/" + m.unit;
    return is_dir(slice) ? slice : "";
}

// A pidfd of the plan's leader if it is still that process; -1 otherwise.
int open_leader(const LockFailurePlan::Entry &m) {
    if (m.leader == 0 || m.start_time == 0)
        return -1;
    int fd = pidfd_open(static_cast<pid_t>(m.leader));
    if (fd < 0)
        return -1;
    // Checked after the pidfd is taken: the pidfd names that one process for good.
    if (process_start_time(static_cast<pid_t>(m.leader)) != m.start_time) {
        close(fd);
        return -1;
    }
    return fd;
}

const char *signame(int sig) {
    return sig == SIGKILL ? "SIGKILL" : sig == SIGTERM ? "SIGTERM" : sig == SIGSTOP ? "SIGSTOP" : "signal";
}

// Whether the entry's action does anything to the machine (not ignore).
bool acts(const LockFailurePlan::Entry &m) { return m.effect().terminate || m.effect().signal != 0; }

// Applies the action without machined. For terminate/restart, leaves in `w`
// what to SIGKILL later.
Outcome act_directly(const std::string &root, Work &w) {
    const auto &m = *w.entry;
    int leader = open_leader(m);
    std::string cgroup = machine_cgroup(root, m, leader);
    const LockFailureEffect &effect = m.effect();
    const bool pause = effect.signal == SIGSTOP, poweroff = effect.signal == SIGKILL;
    const int sig = effect.terminate ? SIGTERM : effect.signal;
    Outcome o;
    if (!cgroup.empty()) {
        std::string how;
        if (poweroff && write_one(cgroup + "/cgroup.kill"))
            how = "cgroup.kill";
        else if (pause && write_one(cgroup + "/cgroup.freeze"))
            how = "cgroup.freeze";
        else
            how = std::string(signame(sig)) + " to " + std::to_string(signal_cgroup(cgroup, sig)) + " process(es)";
        o = {"done directly: " + how + " on " + cgroup, true, false};
        if (!poweroff && !pause)
            w.cgroup = cgroup;
    } else if (leader >= 0) {
        int e = pidfd_send_signal(leader, sig) == 0 ? 0 : errno;
        if (e == 0)
            o = {std::string("done directly: ") + signame(sig) + " to the leader, pid " + std::to_string(m.leader) +
                     " (no cgroup of " + (m.unit.empty() ? "the machine" : m.unit) + " found)",
                 true, false};
        else if (e == ESRCH)
            o = {"nothing to do: the leader, pid " + std::to_string(m.leader) + ", is gone", true, false};
        else
            o = {std::string("failed: cannot signal the leader, pid ") + std::to_string(m.leader) + ": " +
                     std::strerror(e),
                 false, true};
        if (o.recorded && !poweroff && !pause) {
            w.pidfd = leader;
            leader = -1;
        }
    } else if (m.leader != 0 && m.start_time != 0) {
        o = {"nothing to do: the leader, pid " + std::to_string(m.leader) + ", is gone" +
                 (m.unit.empty() ? "" : " and " + m.unit + " has no cgroup"),
             true, false};
    } else {
        o = {"failed: the plan does not say how to find the machine without machined", false, true};
    }
    if (leader >= 0)
        close(leader);
    return o;
}

// What is left of a machine sent SIGTERM directly.
bool still_there(const Work &w) {
    if (!w.cgroup.empty())
        return !cgroup_pids(w.cgroup).empty();
    if (w.pidfd >= 0) {
        pollfd p{w.pidfd, POLLIN, 0};  // readable once the process has exited
        return poll(&p, 1, 0) == 0;
    }
    return false;
}

std::string kill_rest(Work &w) {
    if (!w.cgroup.empty()) {
        if (write_one(w.cgroup + "/cgroup.kill"))
            return "cgroup.kill on " + w.cgroup;
        return "SIGKILL to " + std::to_string(signal_cgroup(w.cgroup, SIGKILL)) + " process(es) of " + w.cgroup;
    }
    return pidfd_send_signal(w.pidfd, SIGKILL) == 0 ? "SIGKILL to the leader, pid " + std::to_string(w.entry->leader)
                                                    : std::string("SIGKILL to the leader failed: ") + std::strerror(errno);
}

// --- one run -------------------------------------------------------------------------

// An exclusive lock held for the run (released at exit); waits for a run
// still acting, but not for ever: protection comes first.
bool lock_run(const std::string &runtime_dir) {
    int fd = open((runtime_dir + "/" + kRunLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    auto until = Clock::now() + std::chrono::milliseconds(kRunLockWaitMs);
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK || Clock::now() >= until)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;  // fd stays open: the lock lasts until exit
}

// How long ago the record was last written; nullopt if there is none.
std::optional<std::chrono::seconds> record_age(const std::string &runtime_dir) {
    struct stat st {};
    if (stat((runtime_dir + "/" + kLockFailureActedFile).c_str(), &st) < 0)
        return std::nullopt;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return std::chrono::seconds(now.tv_sec - st.st_mtim.tv_sec);
}

void report(const LockFailurePlan::Entry &m, const Outcome &o) {
    log_message(LOG_CRIT,
                "vmleased did not answer; lock-failure action " + m.action + " for machine " + m.machine + ": " +
                    o.result,
                {{"OWNER", m.machine}, {"ACTION", m.action}, {"RESULT", o.result}}, message_id::kLockFailureAction);
}

int fall_back(const std::string &runtime_dir) {
    std::ifstream in(runtime_dir + "/" + kLockFailurePlanFile);
    std::stringstream text;
    text << in.rdbuf();
    auto plan = parse_plan(text.str());
    if (!plan) {
        log_message(LOG_CRIT, "vmleased did not answer and there is no usable plan in " + runtime_dir +
                                  "; no machine was stopped", {}, message_id::kLockFailureAction);
        return 1;
    }
    if (!lock_run(runtime_dir))
        log_warning("another vmlease-lockfailure run is still acting (or " + runtime_dir + "/" + kRunLockFile +
                    " cannot be locked); acting anyway");
    std::set<std::string> acted;
    try {
        if (auto age = record_age(runtime_dir); age && *age > kRecordMaxAge) {
            log_notice(runtime_dir + "/" + kLockFailureActedFile + " was last written " +
                       std::to_string(age->count()) + " s ago, by an earlier lock failure: removing it");
            clear_acted(runtime_dir);
        }
        acted = read_acted(runtime_dir);
    } catch (const std::system_error &e) {
        log_error(std::string(e.what()) + "; acting on every machine of the plan");
    }
    std::vector<Work> work;
    std::string skipped;
    for (const auto &m : plan->machines) {
        if (acted.count(m.machine))
            skipped += (skipped.empty() ? "" : ", ") + m.machine;
        else
            work.emplace_back().entry = &m;
    }
    if (!skipped.empty())
        log_notice("lock failure: already acted on by an earlier run, not again: " + skipped,
                   {{"RUNTIME_DIRECTORY", runtime_dir}});
    if (work.empty())
        return 0;
    log_message(LOG_CRIT,
                "vmleased did not answer within " + std::to_string(kAgentTimeoutMs) + " ms; applying its plan for " +
                    std::to_string(work.size()) + " machine(s), through machined if it answers within " +
                    std::to_string(kMachinedTimeoutUsec / 1000) + " ms, else directly",
                {}, message_id::kLockFailureAction);

    // 1. machined, all at once (ignore needs no call).
    std::vector<Work *> ask;
    for (auto &w : work)
        if (acts(*w.entry))
            ask.push_back(&w);
    if (!ask.empty()) {
        std::string trouble = ask_machined(plan->bus_address, ask);
        if (!trouble.empty())
            log_error("lock failure: machined: " + trouble + "; acting directly");
    }
    // 2. directly, where machined did not do it.
    std::string root = cgroup2_root();
    for (auto &w : work) {
        if (!acts(*w.entry))
            w.outcome = {"nothing to do (on_lockfailure: ignore)", true, false};
        else if (w.machined_error.empty())
            w.outcome = {"done through machined", true, false};
        else {
            w.outcome = act_directly(root, w);
            w.outcome.result += " (machined: " + w.machined_error + ")";
        }
    }
    int failures = 0;
    for (auto &w : work) {
        report(*w.entry, w.outcome);
        failures += w.outcome.failed;
        if (w.outcome.recorded) {
            try {
                record_acted(runtime_dir, w.entry->machine, w.entry->action);
            } catch (const std::system_error &e) {
                log_error(std::string(e.what()) + ": a later run will act on " + w.entry->machine + " again");
            }
        }
    }
    // 3. SIGKILL for what a direct SIGTERM did not end.
    auto until = Clock::now() + std::chrono::milliseconds(kTerminateGraceMs);
    auto waiting = [&] {
        bool any = false;
        for (const auto &w : work)
            any = any || still_there(w);
        return any;
    };
    while (waiting() && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (auto &w : work) {
        if (still_there(w)) {
            std::string result = "still running " + std::to_string(kTerminateGraceMs) + " ms after SIGTERM: " +
                                 kill_rest(w);
            log_message(LOG_CRIT,
                        "lock-failure action " + w.entry->action + " for machine " + w.entry->machine + ": " + result,
                        {{"OWNER", w.entry->machine}, {"ACTION", w.entry->action}, {"RESULT", result}},
                        message_id::kLockFailureAction);
        }
        if (w.pidfd >= 0)
            close(w.pidfd);
    }
    return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    std::string runtime_dir = argc > 1 ? argv[1] : "/run/vmlease";
    log_message(LOG_CRIT, "sanlock ran the lock-failure helper: this host's lockspace can no longer be renewed",
                {{"RUNTIME_DIRECTORY", runtime_dir}}, message_id::kLockFailure);
    if (tell_agent(runtime_dir))
        return 0;
    return fall_back(runtime_dir);
}
