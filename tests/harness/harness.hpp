// Test harness: real components on this machine, each in its own temporary
// directory. A "host" is a sanlock daemon with its own SANLOCK_RUN_DIR, its
// own system bus (a dbus-daemon) and its own vmleased; hosts share a lease
// directory the way hosts share an NFS export.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vmtest {

using namespace std::chrono_literals;

// A variable the build passes to the test (a binary's path); fails loudly if unset.
std::string required_env(const char *name);
// The sanlock resource name of a disk's lease: the library's rule (MD5 hex of
// the canonical path), the one way tests compute it.
std::string lease_name(const std::string &canonical_disk);

class TempDir {
public:
    explicit TempDir(const std::string &prefix = "vmlease-test");
    ~TempDir();
    const std::string &path() const { return path_; }
    // Let other users (an unprivileged test client) reach files below it.
    void make_public() const;
    std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

void write_file(const std::string &path, const std::string &content);
std::string read_file(const std::string &path);

// The first sanitizer report (AddressSanitizer, LeakSanitizer, UBSan's
// "runtime error:") in `text`, from its first line on; "" if there is none.
std::string sanitizer_report(const std::string &text);

// Reads a growing log file piece by piece: each call returns the complete
// lines added since the previous call.
class LogCursor {
public:
    explicit LogCursor(std::string path = "") : path_(std::move(path)) {}
    std::string next();

private:
    std::string path_;
    size_t offset_ = 0;
};

// A child process with its output in a log file.
class Child {
public:
    Child() = default;
    // `stdin_fd`/`stdout_fd`: the child's stdin/stdout instead of /dev/null
    // and the log (stderr always goes to the log).
    Child(std::vector<std::string> argv, std::map<std::string, std::string> env, const std::string &log_path,
          int stdin_fd = -1, int stdout_fd = -1);
    Child(Child &&) noexcept;
    Child &operator=(Child &&) noexcept;
    ~Child();

    pid_t pid() const { return pid_; }
    // The wait status of its exit once it has been seen (running(), wait(),
    // stop()); -1 before.
    int status() const { return status_; }
    bool running();
    void signal(int sig) const;
    // Wait for exit; returns the wait status, or -1 on timeout.
    int wait(std::chrono::milliseconds timeout);
    // SIGTERM, then SIGKILL after `grace`; returns the wait status.
    int stop(std::chrono::milliseconds grace = 10s);
    const std::string &log_path() const { return log_; }

private:
    pid_t pid_ = -1;
    int status_ = -1;
    std::string log_;
};

// Run a command to completion; returns its exit status (-1 if it did not finish in time).
int run(std::vector<std::string> argv, std::map<std::string, std::string> env = {}, std::string *output = nullptr,
        std::chrono::milliseconds timeout = 60s);

// The one way a test acts as another user: `argv` prefixed with setpriv,
// which drops to uid and gid `id` with no supplementary groups before it
// runs (for Child and run). kNobody is the unprivileged caller of the tests.
// The program is run as that user, so it and the directories above it (the
// source and build trees) must be searchable by everyone, as a clone under
// /tmp or /work is; tests/install/check-install copies what it runs.
inline constexpr unsigned kNobody = 65534;
std::vector<std::string> as_user(unsigned id, std::vector<std::string> argv);

// Make this process adopt (and so be able to reap) orphans of its children,
// e.g. sanlock's helper process after the daemon exits.
void become_subreaper();
void reap_orphans();

// A description of a wait status: "exit status 1", "signal 9 (Killed)".
std::string describe_status(int status);

// The sanlock daemon of one simulated host. Its log is also where the
// killpath program it runs writes (tests register tests/support/killpath-status,
// which runs vmlease-lockfailure and logs its exit status): on destruction
// the test fails on a sanitizer report there, on a helper that exited with
// anything but 0 and on one still running.
class SanlockDaemon {
public:
    explicit SanlockDaemon(const std::string &dir);
    ~SanlockDaemon();
    // Fail the running test on what the helper runs logged since the last check.
    void check_helpers();
    const std::string &run_dir() const { return run_dir_; }
    std::map<std::string, std::string> env() const { return {{"SANLOCK_RUN_DIR", run_dir_}}; }
    pid_t pid() const { return child_.pid(); }
    void stop();
    // SIGKILL: the daemon forgets every lease and lockspace, as after a crash.
    void crash();
    // Start again after stop() or crash(), with the same run directory;
    // `extra_args` are added to the daemon's command line (e.g. -t 32).
    void start(const std::vector<std::string> &extra_args = {});

private:
    std::string dir_, run_dir_;
    Child child_;
    LogCursor log_;
    unsigned helpers_running_ = 0;
};

class DbusDaemon {
public:
    // `config_template` has @SOCKET@ (and whatever `replace` names) to fill
    // in; by default the allow-everything private bus of tests/support.
    explicit DbusDaemon(const std::string &dir, const std::string &config_template = "",
                        const std::map<std::string, std::string> &replace = {});
    ~DbusDaemon();
    const std::string &address() const { return address_; }

private:
    Child child_;
    std::string address_;
};

struct AgentConfig {
    uint32_t host_id = 1;
    std::string lease_dir;
    uint32_t io_timeout = 1;
    std::string extra_yaml;  // appended to the generated file
    std::vector<std::string> wrapper;          // runs vmleased (e.g. in a namespace)
    std::map<std::string, std::string> env;   // added to its environment
};

std::string config_yaml(const AgentConfig &c);

// vmleased, started from the build tree and waited for until it says READY=1.
//
// Every run must end cleanly: stop() (SIGTERM) must see exit status 0, and
// the log must hold no sanitizer report. Otherwise the test (or the suite's
// teardown) that owns the agent fails, from check() and the destructor. The
// one exemption is a run the test ends itself with crash().
class Agent {
public:
    Agent(const std::string &dir, const std::string &bus_address, const SanlockDaemon &sanlock, const AgentConfig &config);
    ~Agent();
    // Start (again); throws if it exits or does not get ready in time. A
    // run still going is stopped first.
    void start();
    // SIGTERM (or `signal`) and wait; returns the wait status. Anything but
    // exit status 0 (or no exit within 15 s) fails the test.
    int stop(int signal = SIGTERM);
    // SIGKILL and wait, as a crash: the test ends this run on purpose, so it
    // is exempt from the clean-exit check (it must die of that SIGKILL,
    // though, not of something before it). Returns the wait status.
    int crash();
    // Fail the running test on a sanitizer report in the log since the last
    // check, and on a run that ended by itself. Called by the destructor;
    // suites with long-lived hosts also call it after each test.
    void check();
    // For signals other than SIGKILL and SIGTERM (SIGHUP, SIGSTOP/SIGCONT);
    // use stop() and crash() to end a run.
    Child &child() { return child_; }
    const std::string &config_path() const { return config_path_; }
    // The end of its log, for failure messages; the whole of it.
    std::string log() const;
    std::string whole_log() const;
    // The sanlock connections it said at its last start it uses ("over N
    // connections"), or 0 if it did not say.
    unsigned sanlock_connections() const;

private:
    void run_ended(int status);

    std::string dir_, bus_address_, config_path_;
    std::map<std::string, std::string> env_;
    std::vector<std::string> wrapper_;
    Child child_;
    LogCursor log_;
    bool run_pending_ = false;  // a run started whose end has not been checked
    bool crashed_ = false;      // this run ended by crash()
};

// The real systemd-machined on its own private system bus, with a
// systemd1 stand-in (tests/support/machined-env).
class MachinedEnv {
public:
    explicit MachinedEnv(const std::string &dir);
    ~MachinedEnv();
    const std::string &address() const { return address_; }
    // CreateMachine for `leader` (class vm); returns busctl's output.
    std::string create_machine(const std::string &name, pid_t leader) const;
    std::string call(const std::string &method, const std::vector<std::string> &signature_and_args) const;
    // The running systemd-machined (bus-activated: a call starts it again after it exits).
    pid_t machined_pid() const;

private:
    std::string dir_, address_;
};

// Wait until `name` has an owner on the bus at `address`.
bool wait_for_bus_name(const std::string &address, const std::string &name, std::chrono::milliseconds timeout = 30s);

// A dbusmock template (python3-dbusmock) serving on a host's bus.
class DbusMock {
public:
    DbusMock(const std::string &dir, const std::string &bus_address, const std::string &template_path,
             const std::string &bus_name);
    ~DbusMock();
    void stop() { child_.stop(5s); }
    // E.g. to SIGSTOP it: a service that takes calls and never answers.
    pid_t pid() const { return child_.pid(); }

private:
    Child child_;
};

// A real systemd-journald of the test's own (tests/support/journal-env): a
// vmleased started with wrapper() logs to it as under systemd, with
// MESSAGE_ID and VMLEASE_* fields; entries() reads them back, one JSON
// object per line (journalctl -o json).
class Journald {
public:
    explicit Journald(const std::string &dir);
    ~Journald();
    std::vector<std::string> wrapper() const;
    std::string entries(const std::vector<std::string> &matches = {}) const;

private:
    std::string dir_;
    Child child_;
};

// The real polkitd on a host's bus, in a private mount namespace in which
// /usr/share/polkit-1/actions holds the system's actions plus `extra_policy`
// and /etc/polkit-1/rules.d holds only `rules` (JavaScript; may be empty).
class Polkitd {
public:
    Polkitd(const std::string &dir, const std::string &bus_address, const std::string &extra_policy,
            const std::string &rules);
    ~Polkitd();
    std::string log() const;

private:
    std::string dir_;
    Child child_;
};

// Poll `pred` until it holds or `timeout` passes. For conditions that have no
// event of their own to wait for; returns whether it held.
bool eventually(const std::function<bool()> &pred, std::chrono::milliseconds timeout = 30s);

}  // namespace vmtest
