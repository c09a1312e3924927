// Which disk files a running qemu was given, read from its command line.
// libvirt's sanlock plugin names a disk's lease after the literal path in the
// domain XML, and that literal string is what libvirt hands qemu; reading it
// back from qemu's argv lets the agent take the same lease without libvirt.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vmlease {

// Arguments longer than this are skipped rather than parsed: no real disk
// option comes near it, and the agent must not spend unbounded work on a
// command line it does not control.
inline constexpr size_t kMaxQemuArgLength = 64 * 1024;
// At most this many paths are returned, for the same reason.
inline constexpr size_t kMaxQemuDiskPaths = 256;

// The file names a qemu command line gives its disks, in order of appearance,
// each once. argv[0] is the program and is not looked at. Only absolute local
// paths are returned; whether the disk is opened for writing is for the caller
// to find out. Never throws: on failure, what was found so far is returned.
std::vector<std::string> qemu_disk_paths(const std::vector<std::string> &argv);

// argv from the contents of /proc/PID/cmdline (NUL-separated, possibly without
// a trailing NUL). Empty arguments in the middle are kept; never throws.
std::vector<std::string> split_cmdline(const std::string &raw);

}  // namespace vmlease
