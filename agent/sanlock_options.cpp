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

std::vector<std::string> sanlock_args(const std::string &run_dir) {
    std::ifstream pidfile(run_dir + "/sanlock.pid");
    std::string pid;
    if (!(pidfile >> pid))
        return {};
    return cmdline_of(pid);
}

// The last "-F VALUE" / "-FVALUE" on the command line, as sanlock reads it.
std::optional<std::string> arg_value(const std::vector<std::string> &args, const std::string &flag) {
    std::optional<std::string> value;
    for (size_t i = 1; i < args.size(); i++) {
        if (args[i] == flag && i + 1 < args.size())
            value = args[i + 1];
        else if (args[i].rfind(flag, 0) == 0 && args[i].size() > flag.size())
            value = args[i].substr(flag.size());
    }
    return value;
}

// The last "key = value" of sanlock.conf (spaces around '=' or not, as
// sanlock reads it; '#' starts a comment line).
std::optional<std::string> conf_value(const std::string &conf, const std::string &key) {
    std::ifstream in(conf);
    std::optional<std::string> value;
    for (std::string line; std::getline(in, line);) {
        size_t eq = line.find('=');
        std::istringstream before(line.substr(0, eq == std::string::npos ? 0 : eq));
        std::string k, rest, v;
        if (eq == std::string::npos || !(before >> k) || k[0] == '#' || before >> rest || k != key)
            continue;
        if (std::istringstream(line.substr(eq + 1)) >> v)
            value = v;
    }
    return value;
}

std::optional<unsigned> number(const std::optional<std::string> &text) {
    if (!text)
        return std::nullopt;
    try {
        return static_cast<unsigned>(std::stoul(*text));
    } catch (const std::exception &) {
        return std::nullopt;
    }
}

}  // namespace

SanlockOptions read_sanlock_options(const std::string &run_dir, const std::string &conf) {
    SanlockOptions o;
    const std::vector<std::string> args = sanlock_args(run_dir);
    o.running = !args.empty();
    // The command line wins over sanlock.conf, as it does for sanlock.
    if (auto w = arg_value(args, "-w"))
        o.watchdog = *w != "0";
    else if (auto u = conf_value(conf, "use_watchdog"))
        o.watchdog = *u != "0";
    std::optional<unsigned> n = number(arg_value(args, "-t"));
    if (!n)
        n = number(conf_value(conf, "max_worker_threads"));
    o.worker_threads = std::max(2u, n.value_or(kSanlockDefaultWorkerThreads));
    return o;
}

std::optional<std::string> sanlock_watchdog_warning(const SanlockOptions &o) {
    if (!o.running || o.watchdog.value_or(true))
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
