#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/disk_path.hpp"

extern char **environ;

namespace vmtest {

std::string lease_name(const std::string &canonical_disk) { return vmlease::lease_resource_name(canonical_disk); }

std::vector<std::string> as_user(unsigned id, std::vector<std::string> argv) {
    const std::string n = std::to_string(id);
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=" + n, "--regid=" + n, "--clear-groups"});
    return argv;
}

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string &what) { throw std::runtime_error(what); }

std::string tail_of(const std::string &path, size_t max = 4000) {
    std::string s = read_file(path);
    return s.size() > max ? s.substr(s.size() - max) : s;
}

}  // namespace

std::string required_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v)
        fail(std::string("environment variable ") + name + " is not set: run the tests through `meson test`");
    return v;
}

TempDir::TempDir(const std::string &prefix) {
    std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
    if (!mkdtemp(tmpl.data()))
        fail("mkdtemp: " + std::string(strerror(errno)));
    path_ = tmpl;
}

TempDir::~TempDir() {
    if (getenv("VMLEASE_TEST_KEEP"))
        return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void TempDir::make_public() const { chmod(path_.c_str(), 0755); }

void write_file(const std::string &path, const std::string &content) {
    std::ofstream f(path, std::ios::trunc);
    f << content;
    if (!f)
        fail("cannot write " + path);
}

std::string read_file(const std::string &path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// --- sanitizer reports ------------------------------------------------------

namespace {

// "ERROR: AddressSanitizer: ...", "SUMMARY: UndefinedBehaviorSanitizer: ...".
bool names_a_sanitizer(const std::string &line, const std::string &marker) {
    for (size_t at = line.find(marker); at != std::string::npos; at = line.find(marker, at + 1)) {
        size_t word = at + marker.size(), end = word;
        while (end < line.size() && isalpha(static_cast<unsigned char>(line[end])))
            end++;
        if (end - word >= 9 && line.compare(end - 9, 9, "Sanitizer") == 0)
            return true;
    }
    return false;
}

bool is_report_line(const std::string &line) {
    // What ASan, LSan and UBSan print when they find something (UBSan:
    // "file:line:col: runtime error: ..."), and when they cannot do their job.
    return line.find("runtime error:") != std::string::npos || names_a_sanitizer(line, "ERROR: ") ||
           names_a_sanitizer(line, "SUMMARY: ") || line.find("Sanitizer:DEADLYSIGNAL") != std::string::npos ||
           line.find("Sanitizer has encountered a fatal error") != std::string::npos;
}

}  // namespace

std::string sanitizer_report(const std::string &text) {
    for (size_t line = 0; line < text.size();) {
        size_t end = text.find('\n', line);
        if (end == std::string::npos)
            end = text.size();
        if (is_report_line(text.substr(line, end - line))) {
            std::string out = text.substr(line, 6000);
            if (line + out.size() < text.size())
                out += "\n[...]";
            return out;
        }
        line = end + 1;
    }
    return "";
}

std::string LogCursor::next() {
    std::ifstream f(path_, std::ios::binary);
    if (!f)
        return "";
    f.seekg(static_cast<std::streamoff>(offset_));
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    // Only complete lines: a report being written is read on the next call.
    size_t end = text.rfind('\n');
    if (end == std::string::npos)
        return "";
    text.resize(end + 1);
    offset_ += text.size();
    return text;
}

// --- processes ------------------------------------------------------------

Child::Child(std::vector<std::string> argv, std::map<std::string, std::string> env, const std::string &log_path,
             int stdin_fd, int stdout_fd)
    : log_(log_path) {
    std::vector<std::string> envs;
    for (char **e = environ; *e; e++) {
        std::string kv(*e);
        if (!env.count(kv.substr(0, kv.find('='))))
            envs.push_back(kv);
    }
    for (const auto &[k, v] : env)
        envs.push_back(k + "=" + v);
    std::vector<char *> cargv, cenv;
    for (auto &a : argv)
        cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto &e : envs)
        cenv.push_back(e.data());
    cenv.push_back(nullptr);

    int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        fail("cannot open " + log_path);
    pid_ = fork();
    if (pid_ < 0)
        fail("fork failed");
    if (pid_ == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        dup2(stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY), 0);
        dup2(stdout_fd >= 0 ? stdout_fd : logfd, 1);
        dup2(logfd, 2);
        execve(cargv[0], cargv.data(), cenv.data());
        dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
}

Child::Child(Child &&o) noexcept : pid_(o.pid_), status_(o.status_), log_(std::move(o.log_)) { o.pid_ = -1; }

Child &Child::operator=(Child &&o) noexcept {
    if (this != &o) {
        if (pid_ > 0)
            stop(2s);
        pid_ = o.pid_;
        status_ = o.status_;
        log_ = std::move(o.log_);
        o.pid_ = -1;
    }
    return *this;
}

Child::~Child() {
    if (pid_ > 0)
        stop(2s);
}

bool Child::running() {
    if (pid_ <= 0)
        return false;
    int st;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = st;
        pid_ = -1;
        return false;
    }
    return true;
}

void Child::signal(int sig) const {
    if (pid_ > 0)
        kill(pid_, sig);
}

int Child::wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (pid_ > 0) {
        int st;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = st;
            pid_ = -1;
            break;
        }
        if (Clock::now() >= deadline)
            return -1;
        std::this_thread::sleep_for(10ms);
    }
    return status_;
}

int Child::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0)
        return status_;
    signal(SIGCONT);
    signal(SIGTERM);
    int st = wait(grace);
    if (st == -1) {
        signal(SIGKILL);
        st = wait(10s);
    }
    return st;
}

std::string describe_status(int status) {
    if (status == -1)
        return "no exit seen";
    if (WIFEXITED(status))
        return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return "wait status " + std::to_string(status);
}

int run(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string *output,
        std::chrono::milliseconds timeout) {
    TempDir tmp("vmlease-run");
    Child c(std::move(argv), std::move(env), tmp / "out");
    int st = c.wait(timeout);
    if (st == -1)
        c.stop(1s);
    if (output)
        *output = read_file(tmp / "out");
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void become_subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

void reap_orphans() {
    // Only children that are not one of our Child objects are orphans here;
    // reap zombies without touching running processes.
    siginfo_t info;
    for (;;) {
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0)
            return;
        std::string comm = read_file("/proc/" + std::to_string(info.si_pid) + "/comm");
        // Orphans we adopted: sanlock's helper, machined-env's supervisor.
        if (comm.rfind("sanlock-helper", 0) != 0 && comm.rfind("machined-env", 0) != 0)
            return;
        waitpid(info.si_pid, nullptr, WNOHANG);
    }
}

bool eventually(const std::function<bool()> &pred, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (pred())
            return true;
        if (Clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(50ms);
    }
}

// --- sanlock ----------------------------------------------------------------

SanlockDaemon::SanlockDaemon(const std::string &dir)
    : dir_(dir), run_dir_(dir + "/run"), log_(dir + "/sanlock.log") {
    std::filesystem::create_directories(run_dir_);
    start();
}

void SanlockDaemon::start(const std::vector<std::string> &extra_args) {
    std::string sanlock = required_env("SANLOCK");
    std::vector<std::string> argv{sanlock, "daemon", "-D", "-w", "0", "-l", "0", "-h", "0", "-L", "-1", "-S", "-1",
                                  "-U", "root", "-G", "root"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    child_ = Child(argv,
                   // The killpath helper sanlock runs inherits this environment:
                   // a sanitized helper must tolerate the preloaded shim.
                   {{"SANLOCK_RUN_DIR", run_dir_},
                    {"LD_PRELOAD", required_env("SANLOCK_SHIM")},
                    {"ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=1"},
                    // What tests/support/killpath-status runs.
                    {"VMLEASE_LOCKFAILURE", required_env("VMLEASE_LOCKFAILURE")}},
                   dir_ + "/sanlock.log");
    bool up = eventually(
        [&] {
            if (!child_.running())
                fail("sanlock daemon exited during start-up:\n" + tail_of(dir_ + "/sanlock.log"));
            return run({sanlock, "client", "status"}, env(), nullptr, 5s) == 0;
        },
        10s);
    if (!up)
        fail("sanlock daemon did not answer within 10 s:\n" + tail_of(dir_ + "/sanlock.log"));
}

void SanlockDaemon::stop() {
    if (!child_.running())
        return;
    // The daemon ignores SIGTERM while it has a lockspace, and keeps a
    // lockspace with orphan leases (vmleased sets USED_BY_ORPHANS), as a
    // stopped agent leaves them: ask, then kill (no watchdog here, -w 0).
    run({required_env("SANLOCK"), "shutdown", "-f", "1"}, env(), nullptr, 5s);
    if (child_.wait(3s) == -1)
        child_.stop(1s);
    reap_orphans();
}

void SanlockDaemon::crash() {
    child_.signal(SIGKILL);
    child_.wait(10s);
    reap_orphans();  // its helper process
}

// Lines of tests/support/killpath-status, the killpath tests register.
constexpr char kHelperStarted[] = "killpath-status: running ";
constexpr char kHelperExited[] = "killpath-status: vmlease-lockfailure exited with status ";

void SanlockDaemon::check_helpers() {
    std::string text = log_.next();
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.find(kHelperStarted) != std::string::npos) {
            helpers_running_++;
        } else if (auto at = line.find(kHelperExited); at != std::string::npos) {
            helpers_running_ -= helpers_running_ > 0;
            std::string status = line.substr(at + sizeof kHelperExited - 1);
            if (status != "0")
                ADD_FAILURE() << "vmlease-lockfailure, run by sanlock (" << dir_ << "), exited with status " << status
                              << "; sanlock's log:\n" << tail_of(dir_ + "/sanlock.log");
        }
    }
    std::string report = sanitizer_report(text);
    if (!report.empty())
        ADD_FAILURE() << "sanitizer report in sanlock's log (" << dir_
                      << "/sanlock.log; what the killpath helper printed):\n" << report;
}

SanlockDaemon::~SanlockDaemon() {
    // A helper run may still be under way (it waits up to 2 s for the agent).
    eventually(
        [&] {
            check_helpers();
            return helpers_running_ == 0;
        },
        20s);
    try {
        stop();
    } catch (...) {
    }
    check_helpers();
    if (helpers_running_ > 0)
        ADD_FAILURE() << helpers_running_ << " vmlease-lockfailure run(s) by sanlock (" << dir_
                      << ") did not finish within 20 s; sanlock's log:\n" << tail_of(dir_ + "/sanlock.log");
}

// --- dbus -------------------------------------------------------------------

DbusDaemon::DbusDaemon(const std::string &dir, const std::string &config_template,
                       const std::map<std::string, std::string> &replace) {
    std::filesystem::create_directories(dir);
    std::string socket = dir + "/system_bus_socket";
    std::string conf = dir + "/bus.conf";
    std::string source = config_template.empty() ? required_env("PRIVATE_BUS_CONF") : config_template;
    std::string config = read_file(source);
    if (config.empty())
        fail("cannot read " + source);
    std::map<std::string, std::string> values = replace;
    values["@SOCKET@"] = socket;
    for (const auto &[key, value] : values)
        for (size_t pos; (pos = config.find(key)) != std::string::npos;)
            config.replace(pos, key.size(), value);
    write_file(conf, config);
    child_ = Child({required_env("DBUS_DAEMON"), "--config-file=" + conf, "--nofork", "--nopidfile"}, {},
                   dir + "/dbus.log");
    address_ = "unix:path=" + socket;
    // The socket exists once the daemon listens on it.
    if (!eventually([&] { return access(socket.c_str(), F_OK) == 0; }, 10s))
        fail("dbus-daemon did not start:\n" + tail_of(dir + "/dbus.log"));
}

DbusDaemon::~DbusDaemon() { child_.stop(5s); }

// --- vmleased -----------------------------------------------------------------

std::string config_yaml(const AgentConfig &c) {
    // sanlock ignores the killpath program's exit status; this wrapper runs
    // vmlease-lockfailure and logs it, for SanlockDaemon::check_helpers().
    std::string killpath = required_env("VMLEASE_KILLPATH");
    if (killpath.size() > 127)
        fail("VMLEASE_KILLPATH is longer than sanlock's 127 bytes: " + killpath);
    return "host_id: " + std::to_string(c.host_id) + "\nlease_dir: " + c.lease_dir +
           "\nio_timeout: " + std::to_string(c.io_timeout) + "\nlockfailure_helper: " + killpath +
           "\nlease_holder: " + required_env("VMLEASE_HOLDER") + "\n" +
           c.extra_yaml;
}

Agent::Agent(const std::string &dir, const std::string &bus_address, const SanlockDaemon &sanlock,
             const AgentConfig &config)
    : dir_(dir), bus_address_(bus_address), config_path_(dir + "/etc/vmlease.yaml"), log_(dir + "/vmleased.log") {
    std::filesystem::create_directories(dir + "/etc");
    std::filesystem::create_directories(dir + "/runtime");
    std::filesystem::create_directories(dir + "/state");
    write_file(config_path_, config_yaml(config));
    env_ = {{"DBUS_SYSTEM_BUS_ADDRESS", bus_address_},
            {"SANLOCK_RUN_DIR", sanlock.run_dir()},
            {"RUNTIME_DIRECTORY", dir + "/runtime"},
            {"STATE_DIRECTORY", dir + "/state"},
            {"NOTIFY_SOCKET", dir + "/notify.sock"}};
    for (const auto &[k, v] : config.env)
        env_[k] = v;
    wrapper_ = config.wrapper;
    start();
}

void Agent::start() {
    if (run_pending_) {
        if (child_.running())
            stop();
        else
            run_ended(child_.status());
    }
    std::string sock_path = env_["NOTIFY_SOCKET"];
    unlink(sock_path.c_str());
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, sock_path.c_str(), sizeof(addr.sun_path) - 1);
    if (bind(sock, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0)
        fail("cannot bind " + sock_path);

    std::vector<std::string> argv = wrapper_;
    for (const auto &a : {required_env("VMLEASED"), std::string("--config"), config_path_})
        argv.push_back(a);
    child_ = Child(argv, env_, dir_ + "/vmleased.log");
    run_pending_ = true;
    crashed_ = false;

    // Wait for READY=1 on the notify socket: the agent's own "I am up" event.
    auto deadline = Clock::now() + 30s;
    bool ready = false;
    while (!ready && Clock::now() < deadline) {
        pollfd p{sock, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            char buf[4096];
            ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
            if (n > 0 && std::string(buf, n).find("READY=1") != std::string::npos)
                ready = true;
        }
        if (!ready && !child_.running())
            break;
    }
    close(sock);
    if (!ready)
        fail("vmleased did not become ready:\n" + log());
}

int Agent::stop(int signal) {
    int st = -1;
    if (signal == SIGTERM) {
        st = child_.stop(15s);
    } else {
        child_.signal(signal);
        st = child_.wait(15s);
        if (st == -1)
            st = child_.stop(1s);  // SIGTERM, then SIGKILL: run_ended reports it
    }
    run_ended(st);
    return st;
}

int Agent::crash() {
    if (!run_pending_)
        return child_.status();
    crashed_ = true;
    child_.signal(SIGKILL);
    int st = child_.wait(10s);
    if (st == -1) {
        ADD_FAILURE() << "vmleased (" << dir_ << ") survived SIGKILL for 10 s";
        st = child_.stop(1s);
    }
    run_ended(st);
    return st;
}

void Agent::run_ended(int st) {
    if (!run_pending_)
        return;
    run_pending_ = false;
    if (crashed_) {
        if (!(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
            ADD_FAILURE() << "vmleased (" << dir_ << ") ended before the test's SIGKILL: " << describe_status(st)
                          << "\n" << log();
        return;
    }
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    std::string why = st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                          ? " (SIGKILLed by the harness: no exit within 15 s of SIGTERM)"
                          : "";
    ADD_FAILURE() << "vmleased (" << dir_ << ") did not exit cleanly: " << describe_status(st) << why << "\n"
                  << log();
}

void Agent::check() {
    if (run_pending_ && !child_.running())
        run_ended(child_.status());  // it ended by itself
    std::string report = sanitizer_report(log_.next());
    if (!report.empty())
        ADD_FAILURE() << "sanitizer report in vmleased's log (" << dir_ << "/vmleased.log):\n" << report;
}

Agent::~Agent() {
    stop();
    check();
}

std::string Agent::log() const { return tail_of(dir_ + "/vmleased.log"); }

std::string Agent::whole_log() const { return read_file(dir_ + "/vmleased.log"); }

unsigned Agent::sanlock_connections() const {
    const std::string log = whole_log();
    const std::regex said(R"(over (\d+) connections)");
    unsigned n = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), said); it != std::sregex_iterator(); ++it)
        n = static_cast<unsigned>(std::stoul((*it)[1]));
    return n;
}

// --- other bus services -------------------------------------------------------

bool wait_for_bus_name(const std::string &address, const std::string &name, std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
            std::string out;
            run({"/usr/bin/busctl", "--address=" + address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                 "org.freedesktop.DBus", "NameHasOwner", "s", name},
                {}, &out, 5s);
            return out.find("b true") != std::string::npos;
        },
        timeout);
}

MachinedEnv::MachinedEnv(const std::string &dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    std::string out;
    int rc = run({required_env("MACHINED_ENV"), "start", dir}, {}, &out, 60s);
    auto at = out.find("DBUS_SYSTEM_BUS_ADDRESS=");
    if (rc != 0 || at == std::string::npos)
        fail("machined-env start failed (" + std::to_string(rc) + "):\n" + out);
    address_ = out.substr(at + 24);
    address_ = address_.substr(0, address_.find_first_of("\n"));
    if (!address_.empty() && (address_.front() == '\'' || address_.front() == '"'))
        address_ = address_.substr(1, address_.size() - 2);
}

MachinedEnv::~MachinedEnv() {
    run({required_env("MACHINED_ENV"), "stop", dir_}, {}, nullptr, 60s);
    reap_orphans();
}

std::string MachinedEnv::call(const std::string &method, const std::vector<std::string> &args) const {
    std::vector<std::string> argv{"/usr/bin/busctl", "--address=" + address_, "call", "org.freedesktop.machine1",
                                  "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager", method};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    run(argv, {}, &out, 30s);
    return out;
}

pid_t MachinedEnv::machined_pid() const {
    std::string text = read_file(dir_ + "/machined.pid");
    return text.empty() ? 0 : static_cast<pid_t>(std::stol(text));
}

std::string MachinedEnv::create_machine(const std::string &name, pid_t leader) const {
    return call("CreateMachine", {"sayssusa(sv)", name, "0", "vmlease-test", "vm", std::to_string(leader), "", "0"});
}

DbusMock::DbusMock(const std::string &dir, const std::string &bus_address, const std::string &template_path,
                   const std::string &bus_name) {
    std::filesystem::create_directories(dir);
    std::string log = dir + "/dbusmock.log";
    child_ = Child({"/usr/bin/python3", "-m", "dbusmock", "--system", "--template", template_path},
                   {{"DBUS_SYSTEM_BUS_ADDRESS", bus_address}}, log);
    if (!wait_for_bus_name(bus_address, bus_name))
        fail("dbusmock did not take " + bus_name + ":\n" + tail_of(log));
}

DbusMock::~DbusMock() { stop(); }

Journald::Journald(const std::string &dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    child_ = Child({required_env("JOURNAL_ENV"), "start"}, {}, dir + "/journald.log");
    // Up once its native socket is there, seen from inside its own namespace
    // (not the host's, which may have a journald of its own).
    const std::string pid = std::to_string(child_.pid());
    auto ns_of = [](const std::string &p) {
        std::error_code ec;
        return std::filesystem::read_symlink(p, ec).string();
    };
    bool up = eventually([&] {
        return ns_of("/proc/" + pid + "/ns/mnt") != ns_of("/proc/self/ns/mnt") &&
               run({"/usr/bin/nsenter", "-t", pid, "-m", "--", "/usr/bin/test", "-S", "/run/systemd/journal/socket"}) ==
                   0;
    }, 15s);
    if (!up)
        fail("systemd-journald did not start:\n" + tail_of(dir + "/journald.log"));
}

Journald::~Journald() { child_.stop(5s); }

std::vector<std::string> Journald::wrapper() const {
    return {required_env("JOURNAL_ENV"), "run", std::to_string(child_.pid())};
}

std::string Journald::entries(const std::vector<std::string> &matches) const {
    std::vector<std::string> argv{required_env("JOURNAL_ENV"), "read", std::to_string(child_.pid()), "-o", "json"};
    argv.insert(argv.end(), matches.begin(), matches.end());
    std::string out;
    run(argv, {}, &out, 30s);
    return out;
}

Polkitd::Polkitd(const std::string &dir, const std::string &bus_address, const std::string &extra_policy,
                 const std::string &rules)
    : dir_(dir) {
    namespace fs = std::filesystem;
    fs::create_directories(dir + "/actions");
    fs::create_directories(dir + "/rules");
    for (const auto &entry : fs::directory_iterator("/usr/share/polkit-1/actions"))
        fs::copy_file(entry.path(), dir + "/actions/" + entry.path().filename().string(),
                      fs::copy_options::overwrite_existing);
    fs::copy_file(extra_policy, dir + "/actions/" + fs::path(extra_policy).filename().string(),
                  fs::copy_options::overwrite_existing);
    if (!rules.empty())
        write_file(dir + "/rules/50-test.rules", rules);
    // polkitd drops to the polkitd user: let it read what it needs.
    for (const auto &p : {dir, dir + "/actions", dir + "/rules"})
        chmod(p.c_str(), 0755);
    std::string script = "mount --bind " + dir + "/actions /usr/share/polkit-1/actions && mount --bind " + dir +
                         "/rules /etc/polkit-1/rules.d && exec /usr/lib/polkit-1/polkitd --no-debug";
    child_ = Child({"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script},
                   {{"DBUS_SYSTEM_BUS_ADDRESS", bus_address}}, dir + "/polkitd.log");
    if (!wait_for_bus_name(bus_address, "org.freedesktop.PolicyKit1"))
        fail("polkitd did not start:\n" + tail_of(dir + "/polkitd.log"));
}

Polkitd::~Polkitd() { child_.stop(5s); }

std::string Polkitd::log() const { return tail_of(dir_ + "/polkitd.log"); }

}  // namespace vmtest
