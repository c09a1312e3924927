// Naming what a machine holds open, where the scan found it (a worker
// thread: every lookup here may block on a hung file system). Each
// writable file gets its identity (udev_disk_namer.hpp; through the
// process's own mount table), as aliases the paths qemu was given for the
// same file (its command line: libvirt's plugin names leases after them),
// and a block device its node and links for the discovery patterns.
#pragma once

#include "config.hpp"
#include "core/machine_tracker.hpp"

#include <vector>

namespace vmlease {

class UdevDiskNamer;

void name_open_files(std::vector<OpenFile> &files, const UdevDiskNamer &namer);

// The discovery patterns whose fixed leading directories resolve to
// another path (a symlinked or bind-mounted images directory), so that
// they match the identities of the files below them.
ResolvedPatterns resolve_patterns(const Discovery &discovery);

}  // namespace vmlease
