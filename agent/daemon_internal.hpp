// What the daemon's files (daemon*.cpp) share, and nothing else needs:
// clocks, the scan and stop-check periods, small system helpers.
#pragma once

#include <cstdint>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <string>

namespace vmlease::daemon_internal {

// How often the open files of running machines are looked at again, so
// disks hot-plugged into a running VM are protected too.
inline constexpr uint64_t kScanIntervalUsec = 2 * 1000000;

// A machine that just appeared is looked at every kDenseScanUsec for
// kYoungUsec, until a disk it opened is found: qemu opens its disks after
// machined registers it, and until a scan finds them no lease guards them.
// At most kDensePerTick machines per tick, so a mass start does not take the
// CPU from sanlock (each machine is then looked at less often).
inline constexpr uint64_t kDenseScanUsec = 50 * 1000;
inline constexpr uint64_t kYoungUsec = 2 * 1000000;
inline constexpr size_t kDensePerTick = 8;

// How long after its lock-failure action a machine that is still there
// is named in the journal as one that would not stop.
inline constexpr uint64_t kStopCheckUsec = 10 * 1000000;

inline uint64_t realtime_usec() {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

inline uint64_t now_usec() {
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// "state D (disk sleep)" for a process, "" if it is gone.
inline std::string process_state(uint32_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (pid == 0 || close == std::string::npos || close + 2 >= stat.size())
        return "";
    char c = stat[close + 2];
    return std::string("state ") + c + (c == 'D' ? " (uninterruptible: waiting for storage)" : "");
}

// An sd-event or sd-bus call that failed during start-up: fatal.
inline void check(int r, const char *what) {
    if (r < 0)
        throw std::runtime_error(std::string(what) + ": " + strerror(-r));
}

}  // namespace vmlease::daemon_internal
