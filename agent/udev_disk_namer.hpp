// The identity of a disk (README, "Disk identity"; the one rule, for every
// source): a block device, whatever path reaches it (/dev/sdX, /dev/dm-N, a
// by-path or by-id link, any symlink), is named after what the storage
// itself says it is, from the udev database, in the form of udev's by-id
// links, so every host computes the same name and every path of a LUN gives
// one: device-mapper UUID (multipath, LVM), WWN (SCSI VPD 83, ATA, NVMe
// EUI/NGUID), serial; an iSCSI by-path name (portal and target are the same
// everywhere); with none of them the device has no identity and is refused.
// A file is named by its resolved path (file_identity.hpp). The literal
// path, if it differs, is an alias (disk_namer.hpp).
#pragma once

#include "core/disk_namer.hpp"
#include "file_identity.hpp"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

struct udev;
struct udev_device;

namespace vmlease {

inline constexpr const char *kByPathDir = "/dev/disk/by-path/";

// The by-path name of a device udev describes: the first of its by-path
// links in sorted order (a device may have several), from the database's
// link list or else the DEVLINKS property. nullopt if it has none.
std::optional<std::string> by_path_name(udev_device *device);

// The stable cross-host name of a device udev describes, or nullopt.
std::optional<std::string> stable_device_name(udev_device *device);
// The aliases of a block device named `literal`: only names that are the
// same disk on every host (by-id links, iSCSI by-path names).
std::vector<std::string> device_aliases(const std::string &identity, const std::string &literal);

class UdevDiskNamer final : public DiskNamer {
public:
    UdevDiskNamer();
    ~UdevDiskNamer() override;
    UdevDiskNamer(const UdevDiskNamer &) = delete;
    UdevDiskNamer &operator=(const UdevDiskNamer &) = delete;

    // Rules:
    //  - not absolute, too long, control characters: Invalid;
    //  - resolves (stat, following links) to a block device: its stable
    //    name; with none, Unidentified (refused: fail closed);
    //  - does not exist and lies under /dev/: Absent (a device to wait for);
    //  - anything else: a file, named by identify_file().
    DiskName canonical(const std::string &path) const override;
    // What process `pid` holds open as fd `fd` (`seen`: its link as the
    // process sees it, perhaps in a mount namespace of its own): its
    // identity, and in `names` a block device's node and links here.
    DiskName canonical_open(int pid, const std::string &fd, const std::string &seen,
                            std::vector<std::string> &names) const;

private:
    std::vector<MountEntry> mounts() const;
    DiskName device_name(dev_t device, const std::string &named_as, std::vector<std::string> *names) const;

    udev *udev_ = nullptr;
};

}  // namespace vmlease
