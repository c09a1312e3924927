// Whether the sanlock daemon on this host runs without its watchdog. Debian
// ships sanlock with "-w 0": then a host that loses its storage and cannot
// stop its VMs in time is not reset, and another host may take their disks
// while they still write. vmleased cannot fix that, but it must say so.
#pragma once

#include <optional>
#include <string>

namespace vmlease {

// A warning for the journal and the Manager's Warnings property, or nullopt
// when sanlock uses its watchdog (or cannot be looked at). `run_dir` is
// sanlock's run directory (its pid file), `conf` its sanlock.conf.
std::optional<std::string> sanlock_watchdog_warning(const std::string &run_dir,
                                                    const std::string &conf = "/etc/sanlock/sanlock.conf");

}  // namespace vmlease
