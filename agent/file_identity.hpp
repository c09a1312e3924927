// The identity of a file disk: the one path every host that mounts the
// storage the same way computes for it, however a caller or a VM reached it.
// Symlinks and ".." are resolved the way the kernel resolves them (realpath,
// on the path as written: lexical ".." removal can name another file), and
// a bind mount is seen through: the file is named through the mount of its
// file system that exposes the most of it (the shortest mount root; then
// the shortest mount point; then the first in sort order), so
// /var/lib/libvirt/images bound from /srv/images names /srv/images/a.img.
// A file a VM holds open in its own mount namespace is named the same way,
// from the VM's mount table (its fd's mount id) mapped into ours.
// Blocking (file system lookups): never on the event loop.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace vmlease {

struct MountEntry {
    int id = 0;
    unsigned major = 0, minor = 0;
    std::string root;         // the directory of the file system mounted here
    std::string mount_point;  // where, in the reading process's namespace
};

// /proc/PID/mountinfo (or any file in its format), octal escapes undone.
std::vector<MountEntry> parse_mountinfo(const std::string &text);
std::vector<MountEntry> read_mountinfo(const std::string &file = "/proc/self/mountinfo");

// The name of `path` (absolute, resolved) in `mounts`, through the preferred
// mount of the file system it lies on. `path` itself if no mount covers it.
std::string through_preferred_mount(const std::vector<MountEntry> &mounts, const std::string &path);

// The preferred name in `mounts` of the file at `fs_path` (a path inside the
// file system `major:minor`), or nullopt if no mount there exposes it.
std::optional<std::string> name_on_device(const std::vector<MountEntry> &mounts, unsigned major, unsigned minor,
                                          const std::string &fs_path);

struct FileIdentity {
    std::string path;   // the identity, empty on error
    std::string error;  // why there is none
};

// The identity of `path` as written (absolute): resolved like the kernel
// does; a file that does not exist yet is named after its resolved parent
// directories.
FileIdentity identify_file(const std::string &path, const std::vector<MountEntry> &mounts);

// The identity of what process `pid` holds open as fd `fd`, read through
// /proc (the process's own mount table, so a VM in another mount namespace
// or behind a bind mount gives the host's name); `seen` is the fd's link as
// the process sees it. Errors say why it has no name on this host.
FileIdentity identify_open_file(pid_t pid, const std::string &fd, const std::string &seen,
                                const std::vector<MountEntry> &ours, const std::string &proc_root = "/proc");

}  // namespace vmlease
