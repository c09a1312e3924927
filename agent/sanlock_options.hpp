// What the sanlock daemon on this host runs with, from its command line
// (its pid file in its run directory) and sanlock.conf, the command line
// winning as it does for sanlock:
//
//  - whether it runs without its watchdog. Debian ships sanlock with "-w 0":
//    then a host that loses its storage and cannot stop its VMs in time is
//    not reset, and another host may take their disks while they still
//    write. vmleased cannot fix that, but it must say so;
//  - how many worker threads it has (-t, max_worker_threads; 8 by
//    default): at most that many leases are taken at once, whatever the
//    number of connections asking.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace vmlease {

inline constexpr unsigned kSanlockDefaultWorkerThreads = 8;

struct SanlockOptions {
    // Its pid file names a process whose command line could be read.
    bool running = false;
    // -w on its command line, else use_watchdog in sanlock.conf; unset: on.
    std::optional<bool> watchdog;
    // -t N on its command line, else max_worker_threads in sanlock.conf,
    // else sanlock's default, 8 (at least 2, as sanlock raises it).
    unsigned worker_threads = kSanlockDefaultWorkerThreads;
};

// Read once at start: `run_dir` is sanlock's run directory (its pid file),
// `conf` its sanlock.conf.
SanlockOptions read_sanlock_options(const std::string &run_dir,
                                    const std::string &conf = "/etc/sanlock/sanlock.conf");

// A warning for the journal and the Manager's Warnings property, or nullopt
// when sanlock uses its watchdog (or could not be looked at).
std::optional<std::string> sanlock_watchdog_warning(const SanlockOptions &options);

// What to say when `waited` acquires had to wait for one of sanlock's
// `workers` worker threads: what to set, and when it takes effect.
std::string sanlock_workers_advice(uint64_t waited, unsigned workers);

}  // namespace vmlease
