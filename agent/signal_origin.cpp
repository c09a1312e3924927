#include "signal_origin.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vmlease {
namespace {

pid_t parent_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line))
        return -1;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    auto close = line.rfind(')');
    if (close == std::string::npos)
        return -1;
    std::istringstream rest(line.substr(close + 1));
    char state;
    pid_t ppid = -1;
    rest >> state >> ppid;
    return ppid;
}

std::string comm_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

pid_t sanlock_daemon_pid(const std::string &run_dir) {
    std::ifstream f(run_dir + "/sanlock.pid");
    pid_t pid = -1;
    f >> pid;
    return f ? pid : -1;
}

}  // namespace

std::string sanlock_run_dir_from_env() {
    const char *e = getenv("SANLOCK_RUN_DIR");
    return e && *e ? e : "/run/sanlock";
}

bool signal_sent_by_sanlock(pid_t sender, const std::string &sanlock_run_dir) {
    if (sender <= 0)
        return false;
    pid_t daemon = sanlock_daemon_pid(sanlock_run_dir);
    if (daemon > 0)
        return sender == daemon || parent_of(sender) == daemon;
    // No pid file to go by: recognise the daemon and its helper by name.
    return comm_of(sender) == "sanlock-helper" && comm_of(parent_of(sender)) == "sanlock";
}

}  // namespace vmlease
