#include "udev_disk_namer.hpp"

#include "core/disk_path.hpp"
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
    // device-mapper: a multipath map is named by the WWID multipath gave it,
    // exactly as its path devices are named below (multipath's WWID is their
    // ID_SERIAL, or ID_WWN for NVMe), so the map and a path used directly
    // are one disk; other maps (LVM, crypt) by their UUID.
    if (const char *uuid = prop("DM_UUID"); plain(uuid)) {
        std::string u = uuid;
        // kpartx names a multipath map's partition map "part<N>-mpath-<WWID>":
        // named as the path device's partition N.
        std::string map_part;
        if (size_t m = u.find("-mpath-"); u.rfind("part", 0) == 0 && m != std::string::npos && m > 4 &&
                                           u.find_first_not_of("0123456789", 4) == m) {
            map_part = "-part" + u.substr(4, m - 4);
            u = u.substr(m + 1);
        }
        if (u.rfind("mpath-", 0) == 0 && u.size() > 6) {
            std::string wwid = u.substr(6);
            bool nvme = wwid.rfind("eui.", 0) == 0 || wwid.rfind("nvme.", 0) == 0 || wwid.rfind("uuid.", 0) == 0;
            return std::string(nvme ? "/dev/disk/by-id/wwn-" : "/dev/disk/by-id/scsi-") + wwid + map_part;
        }
        return "/dev/disk/by-id/dm-uuid-" + u;
    }
    if (prop("DM_NAME"))
        return std::nullopt;  // a dm device without a UUID has no stable name
    // SCSI: the WWID scsi_id reads from VPD page 83 (80 without it), the
    // name multipath uses; then a WWN (ATA, NVMe EUI-64/NGUID); then a serial.
    const char *bus = prop("ID_BUS");
    const char *serial = prop("ID_SERIAL");
    if (bus && std::strcmp(bus, "scsi") == 0 && plain(serial))
        return std::string("/dev/disk/by-id/scsi-") + serial + part;
    for (const char *key : {"ID_WWN_WITH_EXTENSION", "ID_WWN"})
        if (const char *wwn = prop(key); plain(wwn))
            return std::string("/dev/disk/by-id/wwn-") + wwn + part;
    if (plain(serial))
        return std::string("/dev/disk/by-id/") + (plain(bus) ? bus : "disk") + "-" + serial + part;
    // An iSCSI LUN: its target and LUN (not the portal: one LUN may be
    // reached through several). PCI, SAS and FC by-path names name the
    // local HBA: never an identity.
    if (auto by_path = by_path_name(device); by_path && by_path->rfind(std::string(kByPathDir) + "ip-", 0) == 0) {
        size_t target = by_path->find("-iscsi-");
        if (target == std::string::npos)
            return by_path;
        return "/dev/disk/by-id/iscsi-" + by_path->substr(target + 7);
    }
    return std::nullopt;
}

std::vector<std::string> device_aliases(const std::string &identity, const std::string &literal) {
    // Kernel names (/dev/sdc, /dev/dm-3), /dev/mapper names and by-id
    // links made of names an administrator chose (dm-name-, md-name-) may
    // name another disk on another host: as lease names they would refuse
    // it. Only names udev derives from the storage or the network path are.
    bool stable = (literal.rfind("/dev/disk/by-id/", 0) == 0 && literal.rfind("/dev/disk/by-id/dm-name-", 0) != 0 &&
                   literal.rfind("/dev/disk/by-id/md-name-", 0) != 0) ||
                  literal.rfind(std::string(kByPathDir) + "ip-", 0) == 0;
    return stable ? aliases_of(identity, literal) : std::vector<std::string>{};
}

UdevDiskNamer::UdevDiskNamer() : udev_(udev_new()) {
    if (!udev_)
        throw std::runtime_error("cannot create a udev context");
}

UdevDiskNamer::~UdevDiskNamer() { udev_unref(udev_); }

std::vector<MountEntry> UdevDiskNamer::mounts() const {
    // Read at every lookup: file systems come and go (automounts, a late
    // NFS mount), and a stale table would name a file another way than
    // the hosts and callers that see the mount.
    return read_mountinfo();
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
        name.aliases = S_ISBLK(st.st_mode) ? device_aliases(name.value, lexical) : aliases_of(name.value, lexical);
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
