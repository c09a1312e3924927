#include "disk_discovery.hpp"

#include "core/lease_registry.hpp"
#include "core/disk_path.hpp"
#include "file_identity.hpp"
#include "qemu_cmdline.hpp"
#include "udev_disk_namer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace vmlease {
namespace {

std::vector<std::string> disk_paths_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
    std::stringstream raw;
    raw << f.rdbuf();
    return qemu_disk_paths(split_cmdline(raw.str()));
}

bool has_dot_dot(const std::string &path) {
    return path == ".." || path.find("/../") != std::string::npos || path.rfind("../", 0) == 0 ||
           (path.size() >= 3 && path.compare(path.size() - 3, 3, "/..") == 0);
}

bool same_file(const struct stat &a, const struct stat &b) {
    if (S_ISBLK(a.st_mode) || S_ISBLK(b.st_mode))
        return S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode) && a.st_rdev == b.st_rdev;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

void name_open_files(std::vector<OpenFile> &files, const UdevDiskNamer &namer) {
    std::map<int, std::vector<std::string>> given;  // pid -> paths on its command line
    for (auto &f : files) {
        if (!f.writable || f.pid <= 0)
            continue;
        DiskName name = namer.canonical_open(f.pid, f.fd, f.path, f.names);
        if (name.kind == DiskName::Kind::Canonical) {
            struct stat open_st {};
            std::string link = "/proc/" + std::to_string(f.pid) + "/fd/" + f.fd;
            auto it = given.find(f.pid);
            if (it == given.end())
                it = given.emplace(f.pid, disk_paths_of(f.pid)).first;
            if (!it->second.empty() && stat(link.c_str(), &open_st) == 0)
                for (const auto &given_path : it->second) {
                    // The name that would be hashed is the one looked at, and
                    // ".." (which the kernel and lexical removal may resolve
                    // differently) is not taken from a VM at all.
                    auto normalised = normalise_disk_path(given_path);
                    auto *path = std::get_if<std::string>(&normalised);
                    struct stat st {};
                    if (!path || has_dot_dot(given_path) || stat(path->c_str(), &st) != 0 || !same_file(st, open_st))
                        continue;
                    auto aliases = S_ISBLK(st.st_mode) ? device_aliases(name.value, *path) : aliases_of(name.value, *path);
                    for (const auto &alias : aliases)
                        if (std::find(name.aliases.begin(), name.aliases.end(), alias) == name.aliases.end() &&
                            name.aliases.size() < kMaxAliases)
                            name.aliases.push_back(alias);
                }
        }
        f.name = std::move(name);
    }
}

ResolvedPatterns resolve_patterns(const Discovery &discovery) {
    auto resolve = [](const std::vector<std::string> &patterns) {
        std::vector<std::string> out;
        const auto mounts = read_mountinfo();
        for (const auto &p : patterns) {
            // The directories before the first one with a wildcard.
            size_t wild = p.find_first_of("*?[");
            size_t slash = p.rfind('/', wild == std::string::npos ? p.size() : wild);
            if (slash == std::string::npos || slash == 0)
                continue;
            std::string dir = p.substr(0, slash);
            FileIdentity id = identify_file(dir, mounts);
            if (!id.path.empty() && id.path != dir)
                out.push_back(id.path + p.substr(slash));
        }
        return out;
    };
    return {resolve(discovery.include), resolve(discovery.exclude)};
}

}  // namespace vmlease
