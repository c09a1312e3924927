#include "udev_disk_namer.hpp"

#include "disk_path.hpp"
#include "log.hpp"

#include <libudev.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace vmlease {
namespace {

bool is_by_path(const std::string &link) {
    return link.size() > std::strlen(kByPathDir) && link.compare(0, std::strlen(kByPathDir), kByPathDir) == 0;
}

std::string devnum(dev_t d) { return std::to_string(major(d)) + ":" + std::to_string(minor(d)); }

// Devices already said to have no by-path link: each is logged once per
// process, whichever namer (the loop's, a lookup thread's) met it.
bool first_time_without_by_path(dev_t device) {
    static std::mutex mutex;
    static std::set<dev_t> logged;
    std::lock_guard lock(mutex);
    return logged.insert(device).second;
}

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

UdevDiskNamer::UdevDiskNamer() : udev_(udev_new()) {
    if (!udev_)
        throw std::runtime_error("cannot create a udev context");
}

UdevDiskNamer::~UdevDiskNamer() { udev_unref(udev_); }

DiskName UdevDiskNamer::canonical(const std::string &path) const {
    auto normalised = normalise_disk_path(path);
    if (auto *err = std::get_if<PathError>(&normalised))
        return {DiskName::Kind::Invalid, err->message};
    const std::string &lexical = std::get<std::string>(normalised);

    struct stat st {};
    if (stat(lexical.c_str(), &st) < 0) {
        if ((errno == ENOENT || errno == ENOTDIR) && lexical.rfind("/dev/", 0) == 0)
            return {DiskName::Kind::Absent, lexical};
        return {DiskName::Kind::Canonical, lexical};  // a file not created yet, or not ours to look at
    }
    if (!S_ISBLK(st.st_mode))
        return {DiskName::Kind::Canonical, lexical};

    udev_device *device = udev_device_new_from_devnum(udev_, 'b', st.st_rdev);
    std::optional<std::string> by_path;
    std::string node;
    if (device) {
        by_path = by_path_name(device);
        if (const char *n = udev_device_get_devnode(device))
            node = n;
        udev_device_unref(device);
    }
    if (by_path)
        return {DiskName::Kind::Canonical, *by_path};
    if (node.empty()) {
        // udev does not know it (no /sys entry): the path itself, resolved.
        char *real = realpath(lexical.c_str(), nullptr);
        node = real ? real : lexical;
        free(real);
    }
    if (first_time_without_by_path(st.st_rdev))
        log_warning("block device " + node + " (" + devnum(st.st_rdev) + ", named as " + lexical +
                        ") has no /dev/disk/by-path link; its lease is named after " + node +
                        ", which other hosts may call differently",
                    {{"DISK", node}});
    return {DiskName::Kind::Canonical, node};
}

}  // namespace vmlease
