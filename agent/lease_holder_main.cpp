// vmlease-holder: the live sanlock client that keeps the lock-failure helper
// running when vmleased is not.
//
// sanlock runs a killpath only for live clients that hold a lease in the
// failing lockspace. The agent's leases outlive the agent as orphans (they
// are PERSISTENT), and orphans have no client: with the agent crashed,
// restarting or being upgraded, a storage failure would run nothing, and
// another host could take a disk a VM here is still writing. This process
// registers with sanlock, sets the same killpath as the agent and holds one
// lease of its own in the lockspace (this host's sentinel, released when it
// exits), so that sanlock always has a live client to run vmlease-lockfailure
// for. vmleased starts it (see lease_holder.cpp); it lives on its own, in its
// own session, across agent restarts and crashes.
//
// It is not restricted: once sanlock's grace for the killpath is over it
// SIGKILLs this process, which frees the sentinel and lets the failed
// lockspace go as soon as nothing else holds a lease in it.
//
// Usage: vmlease-holder LOCKSPACE LEASE_DIR RESOURCE KILLPATH [KILLPATH_ARGS]
// Prints "ready" on stdout once the sentinel is held, or "failed: WHY".
#include "log.hpp"
#include "sanlock_client.hpp"

extern "C" {
#include <sanlock.h>
#include <sanlock_resource.h>
}

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <linux/close_range.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

using namespace vmlease;

namespace {

void say(const std::string &line) {
    std::string l = line + "\n";
    (void)!write(STDOUT_FILENO, l.data(), l.size());
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 5) {
        say("failed: usage: vmlease-holder LOCKSPACE LEASE_DIR RESOURCE KILLPATH [KILLPATH_ARGS]");
        return 2;
    }
    SanlockSettings s;
    s.lockspace = argv[1];
    s.lease_dir = argv[2];
    const std::string resource = argv[3], killpath = argv[4], &lockspace = s.lockspace;
    const std::string killpath_args = argc > 5 ? argv[5] : "";

    // sanlock's client library opens its sockets without O_CLOEXEC: whatever
    // vmleased had open (its registered connections, a lease on one) must
    // not live on in here.
    close_range(3, ~0U, 0);

    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

    int fd = sanlock_register();
    if (fd < 0) {
        say("failed: cannot register with sanlock: " + vmlease::sanlock_strerror(fd));
        return 1;
    }
    std::string args = killpath_args.substr(0, SANLK_HELPER_ARGS_LEN - 1);
    int rv = sanlock_killpath(fd, 0, killpath.c_str(), args.data());
    if (rv < 0) {
        say("failed: cannot set the killpath: " + vmlease::sanlock_strerror(rv));
        return 1;
    }
    // A holder that just died leaves its sentinel to sanlock's release
    // thread for a moment (-EEXIST while held, -EAGAIN while being freed):
    // its replacement waits that out, up to 10 s.
    for (int attempt = 0;; attempt++) {
        rv = acquire_sentinel(fd, s, resource);
        if ((rv != -EEXIST && rv != -EAGAIN && rv != -EBUSY) || attempt >= 50)
            break;
        usleep(200000);
    }
    if (rv < 0) {
        say("failed: cannot acquire " + resource + " in lockspace " + lockspace + ": " + vmlease::sanlock_strerror(rv));
        return 1;
    }
    say("ready");
    // Nobody reads on; never die of a closed pipe or hold the agent's pipe open.
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    }
    log_info("vmlease-holder holds " + resource + " in lockspace " + lockspace +
             " so that sanlock runs the lock-failure helper even while vmleased is not running",
             {{"LOCKSPACE", lockspace}, {"RESOURCE", resource}});

    for (;;) {
        pollfd p[2] = {{fd, POLLRDHUP, 0}, {sfd, POLLIN, 0}};
        if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (p[0].revents) {
            // sanlock went away (and with it every lease of this host).
            log_notice("vmlease-holder: the sanlock daemon closed its connection; exiting");
            return 0;
        }
        if (p[1].revents & POLLIN) {
            signalfd_siginfo si{};
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                // Exiting frees the sentinel (it is not persistent).
                log_info("vmlease-holder: asked to stop by pid " + std::to_string(si.ssi_pid) + "; releasing " +
                         resource);
                return 0;
            }
        }
    }
}
