// Where a path a VM, a rule or a caller used becomes the name every host
// computes for the same disk. The core asks through this interface; the
// daemon answers from the udev database (udev_disk_namer.hpp), unit tests
// from a table, so the core itself never touches the system.
#pragma once

#include <string>
#include <vector>

namespace vmlease {

struct DiskName {
    enum class Kind {
        Canonical,     // `value` is the disk's identity (README, "Disk identity")
        Absent,        // a device path with no device behind it on this host (yet)
        Invalid,       // `value` says what is wrong with the path
        Unidentified,  // a disk with no name every host agrees on; `value` says why
    };
    Kind kind = Kind::Invalid;
    std::string value;
    // Canonical: the path as it was written, if it differs from the
    // identity. libvirt's sanlock plugin names its lease after that literal
    // string, so the lease of that name is taken along (an alias).
    std::vector<std::string> aliases = {};
};

// The one rule for aliases: the lexically normalised literal path, unless it
// is the identity itself.
std::vector<std::string> aliases_of(const std::string &identity, const std::string &literal);

class DiskNamer {
public:
    virtual ~DiskNamer() = default;
    virtual DiskName canonical(const std::string &path) const = 0;
    // A disk a rule names with `identity: path`: the administrator vouches
    // that every host names it so, and the path as written is its identity.
    static DiskName named_by_path(const std::string &path);
};

// Lexical normalisation only (disk_path.hpp): what a host without udev can
// do, and what the core's unit tests use.
class LexicalDiskNamer final : public DiskNamer {
public:
    DiskName canonical(const std::string &path) const override;
};

}  // namespace vmlease
