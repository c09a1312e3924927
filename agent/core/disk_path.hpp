// Disk identity: turning whatever path a caller or a VM used into the one
// name every host computes for the same disk, and from it the lease name.
#pragma once

#include <string>
#include <variant>

namespace vmlease {

// Longest disk path we accept from anyone (PATH_MAX without the NUL).
inline constexpr size_t kMaxDiskPathLength = 4095;

struct PathError {
    std::string message;  // says what is wrong, for an InvalidArgs reply
};

// Lexical normalisation of an absolute path: repeated slashes, "." and ".."
// are removed without touching the file system, so every host computes the
// same string for the same path whether or not the file exists there yet.
// Symlinks are not followed (a by-path link must stay a by-path link).
std::variant<std::string, PathError> normalise_disk_path(const std::string &path);

// The sanlock resource name of a canonical disk path: the MD5 hex digest,
// exactly as libvirt's sanlock plugin names auto disk leases, so both can
// guard the same disk in a mixed cluster.
std::string lease_resource_name(const std::string &canonical_path);
// Whether `name` has the form of one (32 lower-case hex digits): lease files
// are named after their resource.
bool is_lease_resource_name(const std::string &name);

}  // namespace vmlease
