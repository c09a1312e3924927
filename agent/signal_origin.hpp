// Who sent us a signal. sanlock, when SIGKILL is restricted on our
// connections, asks us to let go of a failed lockspace by sending SIGTERM
// from its helper process (a child of the sanlock daemon). That SIGTERM is a
// lock failure, not a request to stop, and must not make the agent exit.
#pragma once

#include <string>
#include <sys/types.h>

namespace vmlease {

// `sanlock_run_dir` is where the daemon keeps sanlock.pid ($SANLOCK_RUN_DIR, default /run/sanlock).
bool signal_sent_by_sanlock(pid_t sender, const std::string &sanlock_run_dir);

std::string sanlock_run_dir_from_env();

}  // namespace vmlease
