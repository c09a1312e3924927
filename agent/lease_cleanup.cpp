#include "lease_cleanup.hpp"

#include "core/sanlock_codes.hpp"
#include "core/disk_path.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

namespace vmlease {
namespace {

struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    time_t born = 0;  // birth time where the file system records one, else last status change
    bool regular = false;
};

bool identify(const std::string &path, Identity &out) {
    struct statx stx {};
    if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &stx) < 0)
        return false;
    out.dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    out.ino = stx.stx_ino;
    out.regular = S_ISREG(stx.stx_mode);
    out.born = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime.tv_sec : stx.stx_ctime.tv_sec;
    return true;
}

}  // namespace

CleanupResult clean_up_lease_files(const SanlockSettings &s, const std::set<std::string> &held_here,
                                   uint32_t min_age_seconds, bool dry_run) {
    CleanupResult result;
    std::unique_ptr<DIR, int (*)(DIR *)> dir(opendir(s.lease_dir.c_str()), closedir);
    if (!dir) {
        result.errors.push_back(s.lease_dir + ": " + std::strerror(errno));
        return result;
    }
    std::vector<std::string> names;
    while (dirent *e = readdir(dir.get()))
        if (is_lease_resource_name(e->d_name) && e->d_name != s.lockspace)
            names.push_back(e->d_name);

    std::unique_ptr<SanlockConnection> connection;
    time_t now = time(nullptr);
    for (const auto &resource : names) {
        std::string path = lease_file_path(s, resource);
        if (held_here.count(resource)) {
            result.skipped.push_back(path + ": held on this host");
            continue;
        }
        Identity before;
        if (!identify(path, before) || !before.regular)
            continue;  // gone meanwhile, or not a file we made
        if (now - before.born < static_cast<time_t>(min_age_seconds)) {
            result.skipped.push_back(path + ": younger than " + std::to_string(min_age_seconds) + " s");
            continue;
        }
        if (dry_run) {
            std::vector<LeaseOwner> owners;
            int rv = read_lease_owners(s, resource, owners);
            if (rv < 0)
                result.errors.push_back(path + ": " + sanlock_strerror(rv));
            else if (owners.empty())
                result.removed.push_back(path);
            else
                result.skipped.push_back(path + ": in use by host " + std::to_string(owners.front().host_id));
            continue;
        }
        if (!connection)
            connection = std::make_unique<SanlockConnection>(s);
        int rv = connection->acquire(resource, false, false, false);
        if (rv < 0) {
            if (sanlock_rv::held_by_other_host(rv) || rv == -EAGAIN || rv == -EEXIST || rv == -EUCLEAN)
                result.skipped.push_back(path + ": in use (" + sanlock_strerror(rv) + ")");
            else
                result.errors.push_back(path + ": " + sanlock_strerror(rv));
            continue;
        }
        // Held exclusively now: nobody else can be using it. Delete it only
        // if the path still names the file whose lease we hold.
        Identity after;
        if (!identify(path, after) || after.dev != before.dev || after.ino != before.ino) {
            result.skipped.push_back(path + ": replaced while being checked");
        } else if (unlink(path.c_str()) < 0) {
            result.errors.push_back(path + ": " + std::strerror(errno));
        } else {
            result.removed.push_back(path);
        }
        connection->release(resource);
    }
    return result;
}

}  // namespace vmlease
