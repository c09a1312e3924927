// Where unused lease files are deleted (CleanupLeases). A lease file is
// removed only while this host holds its lease exclusively, so no host
// anywhere can be using it at that moment; never the lockspace file, never a
// file younger than the configured minimum age, and only if it is still the
// same inode after the lease was taken. Blocking I/O: runs on a worker.
#pragma once

#include "sanlock_client.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace vmlease {

// `held_here`: resources this agent holds (never touched). A dry run takes no
// lease and deletes nothing: it lists files no host is recorded as owning.
CleanupResult clean_up_lease_files(const SanlockSettings &s, const std::set<std::string> &held_here,
                                   uint32_t min_age_seconds, bool dry_run);

}  // namespace vmlease
