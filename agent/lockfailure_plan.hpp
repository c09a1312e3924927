// What vmlease-lockfailure does if the agent cannot answer it: the plan the
// agent keeps written in $RUNTIME_DIRECTORY (which machines hold leases,
// their on_lockfailure action, how to find them without machined, and the
// bus machined is on), so that protection never depends on the agent being
// alive; and the record of what the helper already did, so that sanlock
// running it again (about once a second while the failure lasts) never acts
// twice on a machine.
//
// None of these functions logs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/lock_failure_effect.hpp"

namespace vmlease {

struct LockFailurePlan {
    std::string bus_address;  // empty: the default system bus
    struct Entry {
        std::string machine;
        std::string action;       // poweroff | terminate | pause | ignore | restart
        uint32_t leader = 0;      // the machine's leader pid; 0: unknown
        uint64_t start_time = 0;  // the leader's start time (field 22 of /proc/PID/stat); 0: unknown
        std::string unit;         // its systemd unit, e.g. machine-vm1.scope; may be empty
        // What `action` does (a read plan's actions are all known ones).
        const LockFailureEffect &effect() const;
    };
    std::vector<Entry> machines;
};

inline constexpr const char *kLockFailurePlanFile = "lockfailure-plan";
inline constexpr const char *kLockFailureSocket = "lockfailure.sock";
// Lines "machine NAME ACTION", one per machine the helper acted on.
inline constexpr const char *kLockFailureActedFile = "lockfailure-acted";

// Version 2:
//   vmlease-lockfailure-plan 2
//   bus ADDRESS                                  (optional)
//   machine NAME ACTION LEADER START_TIME UNIT   (UNIT "-" when empty)
std::string format_plan(const LockFailurePlan &plan);
// nullopt if the text is not a version 2 plan (a corrupt file, or one from an
// agent of another version, is ignored, not trusted).
std::optional<LockFailurePlan> parse_plan(const std::string &text);

// Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, it names
// one process for good, as a pid alone does not once the pid is reused.
// nullopt if the process does not exist (or /proc cannot be read).
std::optional<uint64_t> process_start_time(pid_t pid);

// Where the unified (v2) cgroup hierarchy is mounted: /sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host; "" if nowhere.
std::string cgroup2_root();

// The lock-failure record in `runtime_dir`, read and appended under an flock
// on the file, since sanlock may start a helper while another still runs.
// read_acted: the machines listed (empty if there is no record yet).
// record_acted: adds one line. clear_acted: removes the record (the agent
// does when its lockspace is joined again). Throw std::system_error on I/O
// errors (a missing record is not one).
std::set<std::string> read_acted(const std::string &runtime_dir);
void record_acted(const std::string &runtime_dir, const std::string &machine, const std::string &action);
void clear_acted(const std::string &runtime_dir);

}  // namespace vmlease
