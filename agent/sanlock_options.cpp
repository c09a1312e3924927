#include "sanlock_options.hpp"

#include "version.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

namespace vmlease {
namespace {

std::vector<std::string> cmdline_of(const std::string &pid) {
    std::ifstream in("/proc/" + pid + "/cmdline");
    std::vector<std::string> args;
    for (std::string arg; std::getline(in, arg, '\0');)
        args.push_back(arg);
    return args;
}

// "-w 0" / "-w0" on the command line wins over sanlock.conf's use_watchdog.
std::optional<bool> watchdog_from_args(const std::vector<std::string> &args) {
    std::optional<bool> on;
    for (size_t i = 0; i < args.size(); i++) {
        if (args[i] == "-w" && i + 1 < args.size())
            on = args[i + 1] != "0";
        else if (args[i].rfind("-w", 0) == 0 && args[i].size() > 2)
            on = args[i].substr(2) != "0";
    }
    return on;
}

std::optional<bool> watchdog_from_conf(const std::string &conf) {
    std::ifstream in(conf);
    std::optional<bool> on;
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::string key, eq, value;
        if (words >> key >> eq >> value && key == "use_watchdog" && eq == "=")
            on = value != "0";
    }
    return on;
}

// `-t N` / `-tN` on the command line.
std::optional<unsigned> workers_from_args(const std::vector<std::string> &args) {
    std::optional<unsigned> n;
    for (size_t i = 0; i < args.size(); i++) {
        std::string value;
        if (args[i] == "-t" && i + 1 < args.size())
            value = args[i + 1];
        else if (args[i].rfind("-t", 0) == 0 && args[i].size() > 2)
            value = args[i].substr(2);
        else
            continue;
        try {
            n = static_cast<unsigned>(std::stoul(value));
        } catch (const std::exception &) {
        }
    }
    return n;
}

std::optional<unsigned> workers_from_conf(const std::string &conf) {
    std::ifstream in(conf);
    std::optional<unsigned> n;
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::string key, eq;
        unsigned value = 0;
        if (words >> key >> eq >> value && key == "max_worker_threads" && eq == "=")
            n = value;
    }
    return n;
}

std::vector<std::string> sanlock_args(const std::string &run_dir) {
    std::ifstream pidfile(run_dir + "/sanlock.pid");
    std::string pid;
    if (!(pidfile >> pid))
        return {};
    return cmdline_of(pid);
}

}  // namespace

unsigned sanlock_worker_threads(const std::string &run_dir, const std::string &conf) {
    std::optional<unsigned> n = workers_from_args(sanlock_args(run_dir));
    if (!n)
        n = workers_from_conf(conf);
    return std::max(2u, n.value_or(kSanlockDefaultWorkerThreads));
}

std::optional<std::string> sanlock_watchdog_warning(const std::string &run_dir, const std::string &conf) {
    auto args = sanlock_args(run_dir);
    if (args.empty())
        return std::nullopt;
    std::optional<bool> on = watchdog_from_args(args);
    if (!on)
        on = watchdog_from_conf(conf);
    if (on.value_or(true))
        return std::nullopt;
    return "sanlock runs without its watchdog (-w 0 or use_watchdog = 0): a host that loses its lease storage "
           "and cannot stop its VMs in time is not reset, so another host may take their disks while they still "
           "write. Enable wdmd and sanlock's watchdog: " VMLEASE_SANLOCK_WATCHDOG_ADVICE ".";
}

std::string sanlock_workers_advice(uint64_t waited, unsigned workers) {
    return std::to_string(waited) + " lease acquire(s) waited for one of sanlock's " + std::to_string(workers) +
           " worker threads: starting many machines at once is faster with more. Set max_worker_threads = " +
           std::to_string(std::max(32u, 2 * workers)) +
           " in /etc/sanlock/sanlock.conf; sanlock reads it when it next starts (not while it holds leases)";
}

}  // namespace vmlease
