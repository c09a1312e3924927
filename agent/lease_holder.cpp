#include "lease_holder.hpp"

#include "atomic_file.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

extern char **environ;

namespace vmlease {
namespace {

constexpr int kReadyTimeoutMs = 30000;

std::string pid_file(const SanlockSettings &s) { return s.runtime_dir + "/" + kHolderPidFile; }

pid_t read_pid_file(const SanlockSettings &s) {
    std::ifstream in(pid_file(s));
    long pid = 0;
    if (!(in >> pid) || pid <= 1)
        return 0;
    return static_cast<pid_t>(pid);
}

// The pid file's process, if it is a live sanlock client holding our
// sentinel (a stale file naming a reused pid is never trusted).
pid_t running_holder(const SanlockSettings &s) {
    pid_t pid = read_pid_file(s);
    if (pid <= 0)
        return 0;
    waitpid(pid, nullptr, WNOHANG);  // reap it if it was our child and died
    return process_holds(s, static_cast<uint32_t>(pid), sentinel_resource(s.host_id)) ? pid : 0;
}

// Start the holder in a session of its own, with no blocked signals, and
// wait for its first line.
HolderOutcome spawn_holder(const SanlockSettings &s) {
    HolderOutcome out;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        out.problem = std::string("cannot start vmlease-holder: pipe: ") + strerror(errno);
        return out;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all_default;
    sigemptyset(&none);
    sigemptyset(&all_default);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD})
        sigaddset(&all_default, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all_default);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string resource = sentinel_resource(s.host_id);
    std::vector<std::string> args = {s.holder, s.lockspace, s.lease_dir, resource, s.killpath, s.killpath_args};
    std::vector<char *> argv;
    for (auto &a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int r = posix_spawn(&pid, s.holder.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (r != 0) {
        close(pipefd[0]);
        out.problem = "cannot start " + s.holder + ": " + strerror(r);
        return out;
    }
    std::string line;
    char buf[512];
    pollfd p{pipefd[0], POLLIN, 0};
    bool eof = false;
    while (line.find('\n') == std::string::npos && poll(&p, 1, kReadyTimeoutMs) == 1) {
        ssize_t n = read(pipefd[0], buf, sizeof buf);
        if (n <= 0) {
            eof = true;
            break;
        }
        line.append(buf, static_cast<size_t>(n));
    }
    close(pipefd[0]);
    line = line.substr(0, line.find('\n'));
    if (line != "ready") {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        out.problem = "vmlease-holder did not start: " +
                      (!line.empty() ? line.substr(0, 300)
                       : eof      ? s.holder + " exited without saying it was ready"
                                  : std::string("no answer within 30 s"));
        return out;
    }
    out.pid = pid;
    out.started = true;
    if (!write_file_atomically(pid_file(s), std::to_string(pid) + "\n"))
        out.problem = "cannot write " + pid_file(s) + ": a restarted vmleased will start a second holder";
    return out;
}

}  // namespace

pid_t find_lease_holder(const SanlockSettings &s) { return running_holder(s); }

std::string sentinel_resource(uint32_t host_id) { return "vmlease-holder-" + std::to_string(host_id); }

HolderOutcome ensure_lease_holder(const SanlockSettings &s) {
    HolderOutcome out;
    if (pid_t pid = running_holder(s)) {
        out.pid = pid;
        return out;
    }
    FileOutcome file = ensure_lease_file(s, sentinel_resource(s.host_id));
    if (!file.ok()) {
        out.problem = "cannot prepare the lease of vmlease-holder: " + file.detail;
        return out;
    }
    return spawn_holder(s);
}

pid_t stop_lease_holder(const SanlockSettings &s, pid_t pid) {
    if (pid <= 0 || !process_holds(s, static_cast<uint32_t>(pid), sentinel_resource(s.host_id)) ||
        kill(pid, SIGTERM) < 0)
        return 0;
    if (read_pid_file(s) == pid)
        unlink(pid_file(s).c_str());
    // Reap it if it is our child (it exits at once); never wait long.
    for (int i = 0; i < 100 && waitpid(pid, nullptr, WNOHANG) == 0; i++)
        usleep(20000);
    return pid;
}

}  // namespace vmlease
