// Which files and block devices a machine's processes hold open, read from
// /proc: the processes are those in the machine's cgroup (found from the
// leader's /proc/PID/cgroup), the files their /proc/PID/fd links, and the
// access mode comes from /proc/PID/fdinfo. Blocking reads: run it on a worker.
#pragma once

#include "core/machine_tracker.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace vmlease {

// Upper bounds per scan, so a machine with a huge process tree or fd table
// costs a bounded amount of work.
inline constexpr size_t kMaxScannedProcesses = 4096;
inline constexpr size_t kMaxScannedFiles = 65536;

// Processes of the machine whose leader is `leader` (the leader alone if its
// cgroup cannot be read).
std::vector<pid_t> machine_processes(pid_t leader, const std::string &cgroup_root = "/sys/fs/cgroup");

// Regular files and block devices open in `pids`, each once; writable if any
// process holds it open for writing.
std::vector<OpenFile> open_files(const std::vector<pid_t> &pids, const std::string &proc_root = "/proc");

}  // namespace vmlease
