// Every call vmlease makes into sanlock lives behind this header. The calls
// block (disk I/O, the sanlock daemon's socket), so they are only ever made
// on effector worker threads, never on the event loop.
#pragma once

#include "core/step.hpp"

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vmlease {

struct SanlockSettings {
    std::string lease_dir;
    std::string lockspace;
    uint32_t host_id = 0;
    uint32_t io_timeout = 10;
    uint32_t lease_num_hosts = 0;  // host slots in a new lease file; 0: sanlock's default (2000)
    uid_t lease_uid = 0;
    gid_t lease_gid = 0;
    std::string killpath;       // vmlease-lockfailure
    std::string killpath_args;  // at most 127 bytes
    std::string holder;         // vmlease-holder
    std::string runtime_dir;    // where vmlease-holder's pid file lives
};

// Size of a lease or lockspace file: 1 MiB, sanlock's alignment for 512-byte sectors.
inline constexpr off_t kLeaseFileSize = 1 << 20;

std::string sanlock_strerror(int rv);
// When sanlock fails on `path` with `rv`: if that is how sanlock reports a
// file it may not open (-ENODEV, -EACCES, -EPERM), what to check (the file's
// owner and mode against the user sanlock runs as; lease_file_user and
// lease_file_group), starting with "; "; else "".
std::string sanlock_open_hint(int rv, const std::string &path);

// What preparing a lease or lockspace file came to. A file-system error and
// sanlock's answer are kept apart: an EEXIST from creating a file is not
// sanlock's "held by another client on this host", and an ENOSPC is not
// "lockspace not joined".
struct FileOutcome {
    int io_errno = 0;    // creating, sizing, chowning or linking the file failed
    int sanlock_rv = 0;  // sanlock could not format it
    std::string detail;  // what failed, for the journal and the caller
    bool ok() const { return io_errno == 0 && sanlock_rv == 0; }
};

// Whether every one of `resources` has its lease file, full size (a stat
// each). A file made by another host's creator may not be formatted yet.
bool lease_files_exist(const SanlockSettings &s, const std::vector<std::string> &resources);

// Create and format the lockspace file if it does not exist yet. Safe against
// a concurrent creator on another host: the file is formatted under a private,
// unpredictable name (.vmlease-tmp.HOSTID.RANDOM, created O_EXCL) and linked
// into place, so nobody ever sees it half-written.
FileOutcome ensure_lockspace_file(const SanlockSettings &s);

// Remove this host's temporary files (.vmlease-tmp.HOSTID.*) that a crash
// left in the lease directory; other hosts' are theirs to remove. Call only
// before this host creates any. Returns how many were removed.
size_t remove_stale_temporaries(const SanlockSettings &s);

// Ask sanlock to join the lockspace (SANLK_ADD_ASYNC) and wait until it has
// (or failed). Returns 0 once joined, including when it already was, unless
// `after_failure`: then a lockspace sanlock still lists is the failed one
// on its way out, and -EEXIST says "not yet".
int join_lockspace(const SanlockSettings &s, bool after_failure = false);

// Create and format the lease file for a resource if missing (same link trick).
FileOutcome ensure_lease_file(const SanlockSettings &s, const std::string &resource);

std::string lease_file_path(const SanlockSettings &s, const std::string &resource);

// Which file the lease file of `resource` is: its inode and, where the file
// system keeps it, its birth time, mixed (never 0); 0 if it cannot be read.
// A lease file removed and made anew is another file, with versions from 0.
uint64_t lease_file_identity(const SanlockSettings &s, const std::string &resource);

// A registered sanlock connection. Leases acquired on it are PERSISTENT: they
// outlive the connection (and this process) as orphans until released, so an
// agent crash never drops a VM's protection. sanlock runs one command at a
// time per connection, so one connection belongs to one worker thread.
class SanlockConnection {
public:
    explicit SanlockConnection(const SanlockSettings &s) : settings_(s) {}
    ~SanlockConnection();
    SanlockConnection(const SanlockConnection &) = delete;
    SanlockConnection &operator=(const SanlockConnection &) = delete;

    // `persistent` false: the lease goes with the connection (cleanup's
    // short-lived holds must not survive a crash as orphans).
    int acquire(const std::string &resource, bool shared, bool adopt_orphan, bool persistent = true);
    // All of `resources` in one call (a lease and its aliases): all or none.
    // `pins`: a resource listed there is taken only if its lease version
    // (lver) on disk is still that one, i.e. nobody took it since
    // (SANLK_RES_LVER; else SANLK_ACQUIRE_LVER, -240). On success,
    // `versions` (if given) gets the lver each resource is held at now.
    int acquire(const std::vector<std::string> &resources, bool shared, bool adopt_orphan, bool persistent = true,
                const std::map<std::string, uint64_t> &pins = {}, std::map<std::string, uint64_t> *versions = nullptr);
    int release(const std::string &resource);
    int release(const std::vector<std::string> &resources);
    // Give back `resource` if this host holds it as an orphan (SANLK_REL_ORPHAN,
    // which sanlock only accepts on a registered connection). sanlock
    // finishes the release in the background; this returns once the lease
    // on disk no longer names this host, so an acquire right after it is
    // not refused. Returns how many were released (0: there was no such
    // orphan), or a negative error.
    int release_orphan(const std::string &resource);
    // Register anew on next use: sanlock refuses new acquires for good on a
    // connection it has targeted after a lock failure.
    void reconnect() { reset(); }

private:
    int ensure_registered();
    void reset();
    // The lver of each of `resources`, held on this connection (in `shared`
    // mode or else exclusive).
    int held_versions(const std::vector<std::string> &resources, bool shared,
                      std::map<std::string, uint64_t> &versions);
    int release_with(const std::vector<std::string> &resources, uint32_t flags);

    SanlockSettings settings_;
    int fd_ = -1;
};

// A registered connection that is never used, only watched: sanlock closes
// it when its daemon stops, the one event that says every lease is gone.
// Returns the fd or a negative errno.
int open_sanlock_watch();

// Hold `resource` on registered connection `fd`, not persistent: it goes
// with the connection (vmlease-holder's sentinel).
int acquire_sentinel(int fd, const SanlockSettings &s, const std::string &resource);

// Orphans of this lockspace count as use: a lockspace that fails while
// orphans remain is not removed (sanlock's watchdog, if any, then resets
// the host) until they are released. Safe to repeat.
int keep_lockspace_for_orphans(const SanlockSettings &s);

// Whether process `pid` (a registered sanlock client, e.g. a VM under
// libvirt's sanlock plugin) holds `resource` in our lockspace.
bool process_holds(const SanlockSettings &s, uint32_t pid, const std::string &resource);

// Read a lease's owners straight from its file on the shared storage, and
// how sanlock on this host sees each owner's host.
// `version`, if given, gets the lease's version (lver) as its leader record says.
int read_lease_owners(const SanlockSettings &s, const std::string &resource, std::vector<LeaseOwner> &owners,
                      uint64_t *version = nullptr);

}  // namespace vmlease
