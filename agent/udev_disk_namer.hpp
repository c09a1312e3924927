// The canonical name of a disk on this host, from the udev database: a block
// device (whatever path reaches it: /dev/sdX, /dev/dm-N, a by-id link, any
// symlink) is named by its /dev/disk/by-path link, the name the libvirt
// plugin tells admins to use and that every host attached the same way
// computes alike. Files keep their lexically normalised path (symlinks to
// files are not followed, as the libvirt plugin does not follow them).
#pragma once

#include "core/disk_namer.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

struct udev;
struct udev_device;

namespace vmlease {

inline constexpr const char *kByPathDir = "/dev/disk/by-path/";

// The by-path name of a device udev describes: the first of its by-path
// links in sorted order (a device may have several), from the database's
// link list or else the DEVLINKS property. nullopt if it has none.
std::optional<std::string> by_path_name(udev_device *device);

class UdevDiskNamer final : public DiskNamer {
public:
    UdevDiskNamer();
    ~UdevDiskNamer() override;
    UdevDiskNamer(const UdevDiskNamer &) = delete;
    UdevDiskNamer &operator=(const UdevDiskNamer &) = delete;

    // Rules:
    //  - not absolute, too long, control characters: Invalid;
    //  - resolves (stat, following links) to a block device: its by-path
    //    name; with none, the device node path, logged once per device;
    //  - does not exist and lies under /dev/: Absent (a device to wait for);
    //  - anything else: the normalised path itself.
    DiskName canonical(const std::string &path) const override;

private:
    udev *udev_ = nullptr;
};

}  // namespace vmlease
