#include "udev_disk_namer.hpp"

#include "disk_path.hpp"
#include "file_identity.hpp"

#include <libudev.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace vmlease {
namespace {

bool is_by_path(const std::string &link) {
    return link.size() > std::strlen(kByPathDir) && link.compare(0, std::strlen(kByPathDir), kByPathDir) == 0;
}

std::string devnum(dev_t d) { return std::to_string(major(d)) + ":" + std::to_string(minor(d)); }

}  // namespace

std::optional<std::string> by_path_name(udev_device *device) {
    std::vector<std::string> links;
    udev_list_entry *e = nullptr;
    udev_list_entry_foreach(e, udev_device_get_devlinks_list_entry(device)) {
        std::string link = udev_list_entry_get_name(e);
        if (is_by_path(link))
            links.push_back(link);
    }
    // Events and devices read without the database carry only properties.
    if (links.empty())
        if (const char *prop = udev_device_get_property_value(device, "DEVLINKS")) {
            std::istringstream in(prop);
            for (std::string link; in >> link;)
                if (is_by_path(link))
                    links.push_back(link);
        }
    if (links.empty())
        return std::nullopt;
    return *std::min_element(links.begin(), links.end());
}

namespace {

// Printable ASCII without spaces: what udev's by-id names are made of.
bool plain(const char *v) {
    if (!v || !*v)
        return false;
    for (const char *c = v; *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '/')
            return false;
    return true;
}

}  // namespace

std::optional<std::string> stable_device_name(udev_device *device) {
    auto prop = [&](const char *key) { return udev_device_get_property_value(device, key); };
    const char *devtype = udev_device_get_devtype(device);
    if (!devtype)
        devtype = prop("DEVTYPE");
    std::string part;
    if (devtype && std::strcmp(devtype, "partition") == 0) {
        const char *n = prop("PARTN");
        if (!plain(n))
            return std::nullopt;  // a partition whose number udev did not say
        part = std::string("-part") + n;
    }
    // device-mapper (multipath: one name for every path of the LUN; LVM):
    // its UUID names partitions itself.
    if (const char *uuid = prop("DM_UUID"); plain(uuid))
        return std::string("/dev/disk/by-id/dm-uuid-") + uuid;
    if (prop("DM_NAME"))
        return std::nullopt;  // a dm device without a UUID has no stable name
    // SCSI VPD page 83 / ATA / NVMe EUI-64 or NGUID, as udev's by-id rules name them.
    for (const char *key : {"ID_WWN_WITH_EXTENSION", "ID_WWN"})
        if (const char *wwn = prop(key); plain(wwn))
            return std::string("/dev/disk/by-id/wwn-") + wwn + part;
    if (const char *serial = prop("ID_SERIAL"); plain(serial)) {
        const char *bus = prop("ID_BUS");
        return std::string("/dev/disk/by-id/") + (plain(bus) ? bus : "disk") + "-" + serial + part;
    }
    // A by-path name is the same on every host only for network paths
    // (iSCSI portal and target); PCI, SAS and FC ones name the local HBA.
    if (auto by_path = by_path_name(device); by_path && by_path->rfind(std::string(kByPathDir) + "ip-", 0) == 0)
        return by_path;
    return std::nullopt;
}

UdevDiskNamer::UdevDiskNamer() : udev_(udev_new()) {
    if (!udev_)
        throw std::runtime_error("cannot create a udev context");
}

UdevDiskNamer::~UdevDiskNamer() { udev_unref(udev_); }

const std::vector<MountEntry> &UdevDiskNamer::mounts() const {
    if (!mounts_)
        mounts_ = read_mountinfo();
    return *mounts_;
}

DiskName UdevDiskNamer::device_name(dev_t devnum_, const std::string &named_as, std::vector<std::string> *names) const {
    udev_device *device = udev_device_new_from_devnum(udev_, 'b', devnum_);
    if (!device)
        return {DiskName::Kind::Unidentified, "block device " + named_as + " (" + devnum(devnum_) +
                                                  ") is not in the udev database, so it has no name every host agrees on"};
    std::optional<std::string> name = stable_device_name(device);
    std::string node = udev_device_get_devnode(device) ? udev_device_get_devnode(device) : named_as;
    if (names) {
        names->push_back(node);
        udev_list_entry *e = nullptr;
        udev_list_entry_foreach(e, udev_device_get_devlinks_list_entry(device)) names->push_back(udev_list_entry_get_name(e));
        if (const char *links = udev_device_get_property_value(device, "DEVLINKS")) {
            std::istringstream in(links);
            for (std::string link; in >> link;)
                names->push_back(link);
        }
    }
    udev_device_unref(device);
    if (!name)
        return {DiskName::Kind::Unidentified,
                "block device " + node + " (" + devnum(devnum_) + ", named as " + named_as +
                    ") has no stable identity (no WWN, serial, device-mapper UUID or iSCSI by-path name), so "
                    "other hosts may call it differently; name it in a machines: rule with \"identity: path\" "
                    "if every host names it alike"};
    return {DiskName::Kind::Canonical, *name};
}

DiskName UdevDiskNamer::canonical(const std::string &path) const {
    auto normalised = normalise_disk_path(path);
    if (auto *err = std::get_if<PathError>(&normalised))
        return {DiskName::Kind::Invalid, err->message};
    const std::string &lexical = std::get<std::string>(normalised);

    struct stat st {};
    if (stat(path.c_str(), &st) < 0 && (errno == ENOENT || errno == ENOTDIR) && lexical.rfind("/dev/", 0) == 0)
        return {DiskName::Kind::Absent, lexical};
    DiskName name;
    if (S_ISBLK(st.st_mode)) {
        name = device_name(st.st_rdev, lexical, nullptr);
    } else {
        FileIdentity file = identify_file(path, mounts());
        if (file.path.empty())
            return {DiskName::Kind::Invalid, file.error};
        name = {DiskName::Kind::Canonical, file.path};
    }
    if (name.kind == DiskName::Kind::Canonical)
        name.aliases = aliases_of(name.value, lexical);
    return name;
}

DiskName UdevDiskNamer::canonical_open(int pid, const std::string &fd, const std::string &seen,
                                       std::vector<std::string> &names) const {
    std::string link = "/proc/" + std::to_string(pid) + "/fd/" + fd;
    struct stat st {};
    if (stat(link.c_str(), &st) < 0)
        return {DiskName::Kind::Invalid, "cannot look at " + seen + ": " + std::strerror(errno)};
    if (S_ISBLK(st.st_mode))
        return device_name(st.st_rdev, seen, &names);
    FileIdentity file = identify_open_file(pid, fd, seen, mounts());
    if (file.path.empty())
        return {DiskName::Kind::Unidentified, file.error};
    return {DiskName::Kind::Canonical, file.path};
}

}  // namespace vmlease
