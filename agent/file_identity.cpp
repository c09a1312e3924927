#include "file_identity.hpp"

#include <algorithm>
#include <climits>
#include <sys/stat.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vmlease {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

// Whether `prefix` is `path` or one of its parent directories.
bool covers(const std::string &prefix, const std::string &path) {
    if (prefix == "/")
        return true;
    return path.compare(0, prefix.size(), prefix) == 0 && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// `path` without its leading `prefix` (which covers it): "" or "/...".
std::string below(const std::string &prefix, const std::string &path) {
    return prefix == "/" ? path : path.substr(prefix.size());
}

std::string join(const std::string &dir, const std::string &rest) {
    if (rest.empty())
        return dir;
    return dir == "/" ? rest : dir + rest;
}

// The mount `path` lies on: the deepest mount point covering it, and of
// mounts on one point the last (the one on top).
const MountEntry *containing(const std::vector<MountEntry> &mounts, const std::string &path) {
    const MountEntry *best = nullptr;
    for (const auto &m : mounts)
        if (covers(m.mount_point, path) && (!best || m.mount_point.size() >= best->mount_point.size()))
            best = &m;
    return best;
}

std::string resolved(const char *path, int &err) {
    char *real = realpath(path, nullptr);
    if (!real) {
        err = errno;
        return {};
    }
    std::string out(real);
    free(real);
    err = 0;
    return out;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(const std::string &text) {
    std::vector<MountEntry> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        MountEntry m;
        int parent = 0;
        std::string devnum, root, point;
        if (!(fields >> m.id >> parent >> devnum >> root >> point))
            continue;
        if (std::sscanf(devnum.c_str(), "%u:%u", &m.major, &m.minor) != 2)
            continue;
        m.root = unescape(root);
        m.mount_point = unescape(point);
        if (m.root.empty() || m.root[0] != '/' || m.mount_point.empty() || m.mount_point[0] != '/')
            continue;  // e.g. a root outside the process's view: "/" is not its prefix
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<MountEntry> read_mountinfo(const std::string &file) {
    std::ifstream f(file);
    std::stringstream text;
    text << f.rdbuf();
    return parse_mountinfo(text.str());
}

std::optional<std::string> name_on_device(const std::vector<MountEntry> &mounts, unsigned major, unsigned minor,
                                          const std::string &fs_path) {
    std::vector<const MountEntry *> candidates;
    for (const auto &m : mounts)
        if (m.major == major && m.minor == minor && covers(m.root, fs_path))
            candidates.push_back(&m);
    // The mount that exposes the most of the file system first, so that every
    // host that mounts it alike picks the same one.
    std::sort(candidates.begin(), candidates.end(), [](const MountEntry *a, const MountEntry *b) {
        if (a->root.size() != b->root.size())
            return a->root.size() < b->root.size();
        if (a->mount_point.size() != b->mount_point.size())
            return a->mount_point.size() < b->mount_point.size();
        return a->mount_point < b->mount_point;
    });
    for (const MountEntry *m : candidates) {
        std::string name = join(m->mount_point, below(m->root, fs_path));
        // Not hidden by another mount on top of it or below it: the name
        // leads back to this very file.
        const MountEntry *seen = containing(mounts, name);
        if (seen && seen->major == major && seen->minor == minor &&
            join(seen->root, below(seen->mount_point, name)) == fs_path)
            return name;
    }
    return std::nullopt;
}

std::string through_preferred_mount(const std::vector<MountEntry> &mounts, const std::string &path) {
    const MountEntry *m = containing(mounts, path);
    if (!m)
        return path;
    std::string fs_path = join(m->root, below(m->mount_point, path));
    return name_on_device(mounts, m->major, m->minor, fs_path).value_or(path);
}

FileIdentity identify_file(const std::string &path, const std::vector<MountEntry> &mounts) {
    int err = 0;
    std::string real = resolved(path.c_str(), err);
    if (!real.empty())
        return {through_preferred_mount(mounts, real), ""};
    if (err != ENOENT)
        return {"", "cannot resolve " + path + ": " + std::strerror(err)};
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0)
        return {"", "cannot resolve " + path + ": a symbolic link to nothing (the file it would create is elsewhere)"};
    // Not there yet: its deepest existing directory is resolved, the rest
    // is named as written (without "." and "..", which the kernel could not
    // resolve through a directory that does not exist either).
    std::vector<std::string> missing;
    std::string dir = path;
    while (true) {
        size_t slash = dir.find_last_of('/');
        std::string last = dir.substr(slash + 1);
        dir = slash == 0 ? "/" : dir.substr(0, slash);
        if (last == "..")
            return {"", "cannot resolve " + path + ": \"..\" below a directory that does not exist"};
        if (!last.empty() && last != ".")
            missing.insert(missing.begin(), last);
        real = resolved(dir.c_str(), err);
        if (!real.empty())
            break;
        if (err != ENOENT)
            return {"", "cannot resolve " + path + ": " + std::strerror(err)};
        if (lstat(dir.c_str(), &st) == 0)
            return {"", "cannot resolve " + path + ": " + dir + " is a symbolic link to nothing"};
        if (dir == "/")
            return {"", "cannot resolve " + path};
    }
    for (const auto &part : missing)
        real = join(real, "/" + part);
    return {through_preferred_mount(mounts, real), ""};
}

FileIdentity identify_open_file(pid_t pid, const std::string &fd, const std::string &seen,
                                const std::vector<MountEntry> &ours, const std::string &proc_root) {
    const std::string dir = proc_root + "/" + std::to_string(pid);
    int mnt_id = -1;
    {
        std::ifstream info(dir + "/fdinfo/" + fd);
        std::string key;
        while (info >> key) {
            if (key == "mnt_id:") {
                info >> mnt_id;
                break;
            }
            std::string rest;
            std::getline(info, rest);
        }
    }
    std::vector<MountEntry> theirs = read_mountinfo(dir + "/mountinfo");
    const MountEntry *m = nullptr;
    for (const auto &e : theirs)
        if (e.id == mnt_id)
            m = &e;
    if (!m || !covers(m->mount_point, seen))
        return {"", "cannot tell which file system " + seen + " (open in process " + std::to_string(pid) +
                        ") lies on"};
    std::string fs_path = join(m->root, below(m->mount_point, seen));
    if (auto name = name_on_device(ours, m->major, m->minor, fs_path))
        return {*name, ""};
    return {"", seen + " (open in process " + std::to_string(pid) +
                    ") lies on a file system this host's agent does not see mounted (" + std::to_string(m->major) +
                    ":" + std::to_string(m->minor) + " " + fs_path + ")"};
}

}  // namespace vmlease
