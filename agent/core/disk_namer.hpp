// Where a path a VM, a rule or a caller used becomes the name every host
// computes for the same disk. The core asks through this interface; the
// daemon answers from the udev database (udev_disk_namer.hpp), unit tests
// from a table, so the core itself never touches the system.
#pragma once

#include <string>

namespace vmlease {

struct DiskName {
    enum class Kind {
        Canonical,  // `value` is the canonical path
        Absent,     // a device path with no device behind it on this host (yet)
        Invalid,    // `value` says what is wrong with the path
    };
    Kind kind = Kind::Invalid;
    std::string value;
};

class DiskNamer {
public:
    virtual ~DiskNamer() = default;
    virtual DiskName canonical(const std::string &path) const = 0;
};

// Lexical normalisation only (disk_path.hpp): what a host without udev can
// do, and what the core's unit tests use.
class LexicalDiskNamer final : public DiskNamer {
public:
    DiskName canonical(const std::string &path) const override;
};

}  // namespace vmlease
