#include "polkit_agent.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>

namespace vmleasectl {
namespace {

constexpr const char *kPkttyagent = "/usr/bin/pkttyagent";

// In the child: the agent talks to the terminal even when our output is redirected.
void use_terminal_for_output() {
    if (isatty(STDOUT_FILENO) && isatty(STDERR_FILENO))
        return;
    int tty = ::open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (tty < 0)
        return;
    if (!isatty(STDOUT_FILENO))
        dup2(tty, STDOUT_FILENO);
    if (!isatty(STDERR_FILENO))
        dup2(tty, STDERR_FILENO);
}

[[noreturn]] void exec_agent(int notify_fd) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = fcntl(notify_fd, F_DUPFD, 3);  // a copy without O_CLOEXEC
    use_terminal_for_output();
    std::string n = std::to_string(fd);
    execl(kPkttyagent, kPkttyagent, "--notify-fd", n.c_str(), "--fallback", nullptr);
    _exit(127);
}

}  // namespace

void PolkitAgent::open() {
    if (pid_ > 0 || geteuid() == 0 || !isatty(STDIN_FILENO) || access(kPkttyagent, X_OK) < 0)
        return;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return;
    pid_ = fork();
    if (pid_ == 0)
        exec_agent(fds[1]);
    close(fds[1]);
    if (pid_ > 0) {
        // pkttyagent closes the fd once it is registered; it also closes when it exits.
        struct pollfd p = {fds[0], POLLHUP, 0};
        while (poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
    }
    close(fds[0]);
}

PolkitAgent::~PolkitAgent() {
    if (pid_ <= 0)
        return;
    kill(pid_, SIGTERM);
    kill(pid_, SIGCONT);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}  // namespace vmleasectl
