#include "sanlock_client.hpp"

#include "core/sanlock_codes.hpp"

extern "C" {
#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_direct.h>
#include <sanlock_resource.h>
#include <sanlock_rv.h>
}

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vmlease {
namespace {

// A sanlk_resource with room for its one disk (the struct ends in disks[0]).
struct OneDiskResource {
    alignas(sanlk_resource) unsigned char buf[sizeof(sanlk_resource) + sizeof(sanlk_disk)]{};
    sanlk_resource *get() { return reinterpret_cast<sanlk_resource *>(buf); }
    // Through the buffer rather than res->disks[0], which GCC sees as out of bounds.
    sanlk_disk *disk() { return reinterpret_cast<sanlk_disk *>(buf + offsetof(sanlk_resource, disks)); }
};

void copy_name(char *dst, size_t size, const std::string &src) {
    memset(dst, 0, size);
    memcpy(dst, src.data(), std::min(src.size(), size - 1));
}

void fill_resource(OneDiskResource &r, const SanlockSettings &s, const std::string &resource,
                   const std::string &path) {
    sanlk_resource *res = r.get();
    copy_name(res->lockspace_name, sizeof(res->lockspace_name), s.lockspace);
    copy_name(res->name, sizeof(res->name), resource);
    res->num_disks = 1;
    res->flags = SANLK_RES_ALIGN1M | SANLK_RES_SECTOR512;
    copy_name(r.disk()->path, sizeof(r.disk()->path), path);
    r.disk()->offset = 0;
}

sanlk_lockspace make_lockspace(const SanlockSettings &s, const std::string &path) {
    sanlk_lockspace ls{};
    copy_name(ls.name, sizeof(ls.name), s.lockspace);
    ls.host_id = s.host_id;
    ls.flags = SANLK_LSF_ALIGN1M | SANLK_LSF_SECTOR512;
    copy_name(ls.host_id_disk.path, sizeof(ls.host_id_disk.path), path);
    ls.host_id_disk.offset = 0;
    return ls;
}

bool exists_with_size(const std::string &path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && st.st_size >= kLeaseFileSize;
}

std::string temporary_prefix(const SanlockSettings &s) {
    return ".vmlease-tmp." + std::to_string(s.host_id) + ".";
}

// A new file in the lease directory under a name nobody can predict or has
// used: .vmlease-tmp.HOSTID.<16 random hex digits>, created O_EXCL. Returns
// the fd, or -errno; `path` is set to the name.
int create_temporary(const SanlockSettings &s, std::string &path) {
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t random = 0;
        if (getrandom(&random, sizeof(random), 0) != static_cast<ssize_t>(sizeof(random)))
            return -errno;
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(random));
        path = s.lease_dir + "/" + temporary_prefix(s) + hex;
        int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0660);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

// Who writes a new file's sanlock format: vmleased itself, through the
// descriptor of the file it created (lease files), or the sanlock daemon,
// which opens it by its name as the user it runs as (the lockspace file: a
// file sanlock may not open is found out there, before any lease).
enum class FormattedBy { ThisProcess, SanlockDaemon };

// Create `final_path` formatted by `format(path)`: the file is created with
// O_EXCL under a private name, sized, chowned, formatted and then hard-linked
// to its final name. link() fails with EEXIST if another host won the race,
// in which case its (complete) file is the one everybody uses. Formatted by
// this process, `path` is /proc/self/fd/N and the file linked is the one
// created, whatever has its private name by then: whoever may write the
// lease directory could otherwise swap the name for a link to any file,
// which vmleased, as root, would format (or link into place).
template <typename Format>
FileOutcome create_formatted(const SanlockSettings &s, const std::string &final_path, FormattedBy by,
                             Format format) {
    FileOutcome out;
    if (exists_with_size(final_path))
        return out;
    std::string tmp;
    int fd = create_temporary(s, tmp);
    if (fd < 0) {
        out.io_errno = -fd;
        out.detail = "cannot create a file in " + s.lease_dir + ": " + strerror(-fd);
        return out;
    }
    // 0660 whatever the umask (the unit's UMask=0007 gives it; a hand-started
    // vmleased's 022 would not): libvirt's hosts write these files as the group.
    if (ftruncate(fd, kLeaseFileSize) < 0 || fchown(fd, s.lease_uid, s.lease_gid) < 0 || fchmod(fd, 0660) < 0 ||
        fsync(fd) < 0) {
        out.io_errno = errno;
        out.detail = "cannot prepare " + tmp + ": " + strerror(out.io_errno);
    }
    const bool here = by == FormattedBy::ThisProcess;
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    if (out.ok()) {
        out.sanlock_rv = format(here ? self : tmp);
        if (out.sanlock_rv < 0)
            out.detail = (here ? "cannot format " : "sanlock could not format ") + tmp + ": " +
                         sanlock_strerror(out.sanlock_rv) + (here ? "" : sanlock_open_hint(out.sanlock_rv, tmp));
        else
            out.sanlock_rv = 0;
    }
    if (out.ok() &&
        (here ? linkat(AT_FDCWD, self.c_str(), AT_FDCWD, final_path.c_str(), AT_SYMLINK_FOLLOW)
              : link(tmp.c_str(), final_path.c_str())) < 0 &&
        errno != EEXIST) {
        out.io_errno = errno;
        out.detail = "cannot link " + tmp + " to " + final_path + ": " + strerror(out.io_errno);
    }
    close(fd);
    unlink(tmp.c_str());
    return out;
}

}  // namespace

std::string sanlock_open_hint(int rv, const std::string &path) {
    if (rv != -ENODEV && rv != -EACCES && rv != -EPERM)
        return "";
    struct stat st {};
    std::string file = stat(path.c_str(), &st) == 0
                           ? "it is uid " + std::to_string(st.st_uid) + ", gid " + std::to_string(st.st_gid) +
                                 ", mode " + [&] {
                                     char m[8];
                                     snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
                                     return std::string(m);
                                 }()
                           : std::string("it could not be looked at: ") + strerror(errno);
    return "; the likely cause: sanlock opens the file itself and runs as a user that may not open it (" + file +
           "): lease files must belong to the user or group sanlock runs as, with the same uid and gid on every "
           "host; set lease_file_user and lease_file_group in /etc/vmlease/vmlease.yaml to them (unset, vmleased "
           "uses the owner of sanlock's socket)";
}

std::string sanlock_strerror(int rv) {
    std::string code = std::to_string(rv);
    switch (rv) {
    case SANLK_ACQUIRE_IDLIVE: return code + " (held by another host, which is alive)";
    case SANLK_ACQUIRE_OWNED: return code + " (owned by another host)";
    case SANLK_ACQUIRE_OTHER: return code + " (held by another host)";
    case SANLK_ACQUIRE_LOCKSPACE: return code + " (lockspace not joined)";
    case SANLK_ACQUIRE_IDDISK: return code + " (host id not found on disk)";
    case SANLK_LEADER_MAGIC: return code + " (lease file is not a sanlock lease)";
    case SANLK_LEADER_LOCKSPACE: return code + " (lease belongs to another lockspace)";
    case SANLK_LEADER_RESOURCE: return code + " (lease belongs to another resource)";
    case SANLK_AIO_TIMEOUT: return code + " (storage I/O timed out)";
    case SANLK_HOSTID_BUSY: return code + " (host id is in use by another host)";
    case SANLK_ADDLS_INVALID_HOSTID: return code + " (invalid host id for this lockspace)";
    default: break;
    }
    if (rv < 0 && rv > -200)
        return code + " (" + strerror(-rv) + ")";
    return code;
}

std::string lease_file_path(const SanlockSettings &s, const std::string &resource) {
    return s.lease_dir + "/" + resource;
}

bool lease_files_exist(const SanlockSettings &s, const std::vector<std::string> &resources) {
    for (const auto &r : resources)
        if (!exists_with_size(lease_file_path(s, r)))
            return false;
    return true;
}

FileOutcome ensure_lockspace_file(const SanlockSettings &s) {
    std::string path = s.lease_dir + "/" + s.lockspace;
    return create_formatted(s, path, FormattedBy::SanlockDaemon, [&](const std::string &tmp) {
        sanlk_lockspace ls = make_lockspace(s, tmp);
        ls.host_id = 0;
        return sanlock_write_lockspace(&ls, 0, 0, s.io_timeout);
    });
}

size_t remove_stale_temporaries(const SanlockSettings &s) {
    DIR *dir = opendir(s.lease_dir.c_str());
    if (!dir)
        return 0;
    const std::string prefix = temporary_prefix(s);
    size_t removed = 0;
    while (struct dirent *e = readdir(dir))
        if (strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0 && unlinkat(dirfd(dir), e->d_name, 0) == 0)
            removed++;
    closedir(dir);
    return removed;
}

int join_lockspace(const SanlockSettings &s, bool after_failure) {
    sanlk_lockspace ls = make_lockspace(s, s.lease_dir + "/" + s.lockspace);
    int rv = sanlock_add_lockspace_timeout(&ls, SANLK_ADD_ASYNC, s.io_timeout);
    if (rv == -EEXIST && !after_failure)
        return 0;  // already joined (e.g. the agent restarted under a running sanlock)
    if (rv < 0 && rv != -EINPROGRESS)
        return rv;
    return sanlock_inq_lockspace(&ls, SANLK_INQ_WAIT);
}

FileOutcome ensure_lease_file(const SanlockSettings &s, const std::string &resource) {
    return create_formatted(s, lease_file_path(s, resource), FormattedBy::ThisProcess, [&](const std::string &fd_path) {
        OneDiskResource r;
        fill_resource(r, s, resource, fd_path);
        // Written by this thread, not by the sanlock daemon, as libvirt's
        // plugin does: formatting never takes one of sanlock's worker
        // threads from an acquire. The same paxos_lease_init as the daemon's
        // write_resource, with synchronous I/O as libvirt asks for (no AIO
        // timeout of the library's own to depend on). num_hosts 0 gives the
        // most the alignment allows, 2000. (The daemon's
        // sanlock_write_resource would take it from its max_hosts argument:
        // the two are crossed between client.c and cmd.c in 3.8.)
        return sanlock_direct_init(nullptr, r.get(), 0, static_cast<int>(s.lease_num_hosts), 0);
    });
}

uint64_t lease_file_identity(const SanlockSettings &s, const std::string &resource) {
    struct statx st {};
    if (statx(AT_FDCWD, lease_file_path(s, resource).c_str(), 0, STATX_INO | STATX_BTIME, &st) < 0)
        return 0;
    uint64_t id = st.stx_ino;
    if (st.stx_mask & STATX_BTIME)
        id = id * 0x9E3779B97F4A7C15ull ^
             (static_cast<uint64_t>(st.stx_btime.tv_sec) * 1000000000ull + st.stx_btime.tv_nsec);
    return id ? id : 1;
}

SanlockConnection::~SanlockConnection() { reset(); }

void SanlockConnection::reset() {
    if (fd_ >= 0)
        close(fd_);
    fd_ = -1;
}

int SanlockConnection::ensure_registered() {
    if (fd_ >= 0)
        return 0;
    int fd = sanlock_register();
    if (fd < 0)
        return fd;
    if (!settings_.killpath.empty()) {
        std::string args = settings_.killpath_args.substr(0, SANLK_HELPER_ARGS_LEN - 1);
        int rv = sanlock_killpath(fd, 0, settings_.killpath.c_str(), args.data());
        if (rv < 0) {
            close(fd);
            return rv;
        }
    }
    // Without a restriction sanlock SIGKILLs the agent itself on a lockspace
    // failure; with SIGKILL restricted it sends SIGTERM, which the agent
    // recognises by its sender (see signal_source.cpp).
    int rv = sanlock_restrict(fd, SANLK_RESTRICT_SIGKILL);
    if (rv < 0) {
        close(fd);
        return rv;
    }
    fd_ = fd;
    return 0;
}

int SanlockConnection::acquire(const std::vector<std::string> &resources, bool shared, bool adopt_orphan,
                               bool persistent, const std::map<std::string, uint64_t> &pins,
                               std::map<std::string, uint64_t> *versions) {
    int rv = ensure_registered();
    if (rv < 0)
        return rv;
    // One call for all of them: sanlock takes every one or none.
    std::vector<OneDiskResource> r(resources.size());
    std::vector<sanlk_resource *> list;
    for (size_t i = 0; i < resources.size(); i++) {
        fill_resource(r[i], settings_, resources[i], lease_file_path(settings_, resources[i]));
        r[i].get()->flags |= (persistent ? SANLK_RES_PERSISTENT : 0) | (shared ? SANLK_RES_SHARED : 0);
        if (auto pin = pins.find(resources[i]); pin != pins.end() && pin->second != 0) {
            r[i].get()->flags |= SANLK_RES_LVER;
            r[i].get()->lver = pin->second;
        }
        list.push_back(r[i].get());
    }
    rv = sanlock_acquire(fd_, -1, adopt_orphan ? SANLK_ACQUIRE_ORPHAN : 0, static_cast<int>(list.size()), list.data(),
                         nullptr);
    if (sanlock_rv::connection_lost(rv))
        reset();  // the sanlock daemon went away; register again next time
    if (rv == 0 && versions)
        held_versions(resources, shared, *versions);  // best effort: a version not read is 0, "not known"
    return rv;
}

int SanlockConnection::held_versions(const std::vector<std::string> &resources, bool shared,
                                     std::map<std::string, uint64_t> &versions) {
    // An exclusive lease's version is in sanlock's memory (the lver its
    // acquire wrote to the leader): asked on this connection, it costs no
    // new connection to the daemon and no read of the disk.
    int count = 0;
    char *state = nullptr;
    if (!shared && sanlock_inquire(fd_, -1, 0, &count, &state) == 0 && state) {
        int n = 0;
        sanlk_resource **held = nullptr;
        if (sanlock_state_to_args(state, &n, &held) == 0) {
            for (int i = 0; i < n; i++) {
                std::string name(held[i]->name, strnlen(held[i]->name, sizeof(held[i]->name)));
                if (std::find(resources.begin(), resources.end(), name) != resources.end() && held[i]->lver != 0)
                    versions[name] = held[i]->lver;
                free(held[i]);
            }
            free(held);
        }
    }
    free(state);
    // The rest (sanlock keeps none for a shared lease) from each lease's
    // leader (one read): while this host holds it, nobody else can change it.
    int first_error = 0;
    for (const auto &name : resources) {
        if (versions.count(name))
            continue;
        OneDiskResource r;
        fill_resource(r, settings_, name, lease_file_path(settings_, name));
        int rv = sanlock_read_resource(r.get(), 0);
        if (rv < 0) {
            first_error = first_error ? first_error : rv;
            continue;
        }
        versions[name] = r.get()->lver;
    }
    return first_error;
}

int SanlockConnection::acquire(const std::string &resource, bool shared, bool adopt_orphan, bool persistent) {
    return acquire(std::vector<std::string>{resource}, shared, adopt_orphan, persistent);
}

int SanlockConnection::release_with(const std::vector<std::string> &resources, uint32_t flags) {
    int rv = ensure_registered();
    if (rv < 0)
        return rv;
    std::vector<OneDiskResource> r(resources.size());
    std::vector<sanlk_resource *> list;
    for (size_t i = 0; i < resources.size(); i++) {
        fill_resource(r[i], settings_, resources[i], lease_file_path(settings_, resources[i]));
        list.push_back(r[i].get());
    }
    rv = sanlock_release(fd_, -1, flags, static_cast<int>(list.size()), list.data());
    if (sanlock_rv::connection_lost(rv))
        reset();
    return rv;
}

int SanlockConnection::release(const std::vector<std::string> &resources) { return release_with(resources, 0); }

int SanlockConnection::release(const std::string &resource) { return release_with({resource}, 0); }

int SanlockConnection::release_orphan(const std::string &resource) {
    int rv = release_with({resource}, SANLK_REL_ORPHAN);
    if (rv <= 0)
        return rv;  // an error, or no orphan of that name (rv is the count released)
    const int released = rv;
    // No event tells when sanlock's release thread has written the lease;
    // its own release takes a few milliseconds, so look (up to 1 s) until
    // it is gone.
    for (int i = 0; i < 100; i++) {
        std::vector<LeaseOwner> owners;
        if (read_lease_owners(settings_, resource, owners) < 0)
            return released;  // no readable lease file: nothing of ours to wait for
        bool ours = false;
        for (const auto &o : owners)
            ours = ours || o.host_id == settings_.host_id;
        if (!ours)
            return released;
        usleep(10000);
    }
    // sanlock let go of it; in a failed lockspace it does not write the
    // lease at all, which then keeps naming this host's old generation (an
    // acquire by this host's next generation takes it over).
    return released;
}

int open_sanlock_watch() { return sanlock_register(); }

int acquire_sentinel(int fd, const SanlockSettings &s, const std::string &resource) {
    OneDiskResource r;
    fill_resource(r, s, resource, lease_file_path(s, resource));
    sanlk_resource *list[1] = {r.get()};
    return sanlock_acquire(fd, -1, 0, 1, list, nullptr);
}

int keep_lockspace_for_orphans(const SanlockSettings &s) {
    return sanlock_set_config(s.lockspace.c_str(), 0, SANLK_CONFIG_USED_BY_ORPHANS, nullptr);
}

bool process_holds(const SanlockSettings &s, uint32_t pid, const std::string &resource) {
    int count = 0;
    char *state = nullptr;
    int rv = sanlock_inquire(-1, static_cast<int>(pid), 0, &count, &state);
    if (rv < 0 || !state)
        return false;
    // "lockspace:resource:path:offset:lver" entries, separated by spaces.
    std::string held(state);
    free(state);
    std::string needle = s.lockspace + ":" + resource + ":";
    return held.rfind(needle, 0) == 0 || held.find(" " + needle) != std::string::npos;
}

int read_lease_owners(const SanlockSettings &s, const std::string &resource, std::vector<LeaseOwner> &owners,
                      uint64_t *version) {
    OneDiskResource r;
    fill_resource(r, s, resource, lease_file_path(s, resource));
    sanlk_host *hosts = nullptr;
    int count = 0;
    int rv = sanlock_read_resource_owners(r.get(), 0, &hosts, &count);
    if (rv < 0)
        return rv;
    if (version)
        *version = r.get()->lver;
    for (int i = 0; i < count; i++) {
        LeaseOwner o;
        o.host_id = hosts[i].host_id;
        o.generation = hosts[i].generation;
        o.timestamp = hosts[i].timestamp;
        o.host_state = "unknown";
        sanlk_host *hs = nullptr;
        int hs_count = 0;
        if (sanlock_get_hosts(s.lockspace.c_str(), o.host_id, &hs, &hs_count, 0) == 0 && hs_count > 0) {
            switch (hs[0].flags & SANLK_HOST_MASK) {
            case SANLK_HOST_LIVE: o.host_state = "live"; break;
            case SANLK_HOST_DEAD: o.host_state = "dead"; break;
            case SANLK_HOST_FAIL: o.host_state = "fail"; break;
            case SANLK_HOST_FREE: o.host_state = "free"; break;
            default: o.host_state = "unknown"; break;
            }
        }
        free(hs);
        owners.push_back(std::move(o));
    }
    free(hosts);
    return 0;
}

}  // namespace vmlease
