#include "sanlock_watchdog.hpp"

#include "version.hpp"

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

}  // namespace

std::optional<std::string> sanlock_watchdog_warning(const std::string &run_dir, const std::string &conf) {
    std::ifstream pidfile(run_dir + "/sanlock.pid");
    std::string pid;
    if (!(pidfile >> pid))
        return std::nullopt;
    auto args = cmdline_of(pid);
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

}  // namespace vmlease
