// vmlease's configuration as the core sees it: the values of vmlease.yaml
// and its drop-ins, parsed and validated (agent/config.hpp reads them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmlease {

enum class LeaseMode { Exclusive, Shared, None };
// pause: frozen (systemd FreezeUnit) until the lease is granted.
enum class ConflictAction { Terminate, Warn, Pause };
// What happens to a machine left unprotected past its grace period.
enum class UnprotectedAction { Terminate, Pause, Warn };
enum class LockFailureAction { Poweroff, Terminate, Pause, Ignore, Restart };

const char *to_string(LeaseMode m);
const char *to_string(ConflictAction a);
const char *to_string(LockFailureAction a);
const char *to_string(UnprotectedAction a);
// Parse the YAML/D-Bus spelling; std::nullopt for anything else.
std::optional<LeaseMode> lease_mode_from_string(const std::string &s);
std::optional<ConflictAction> conflict_action_from_string(const std::string &s);
std::optional<LockFailureAction> lock_failure_action_from_string(const std::string &s);
std::optional<UnprotectedAction> unprotected_action_from_string(const std::string &s);

struct DiskRule {
    std::string path;   // as written in the file (absolute); canonicalised by the caller
    LeaseMode mode = LeaseMode::Exclusive;
    // `identity: path`: the administrator vouches that every host names
    // this disk by `path`, which is then its identity as written (for a
    // device without a stable identity of its own).
    bool identity_is_path = false;
    // Not from the file: other names of the disk (a reservation's), whose
    // leases are taken with it.
    std::vector<std::string> aliases = {};
};

struct MachineRule {
    std::string match;  // fnmatch(3) glob on the machine name
    std::vector<DiskRule> disks;
    std::optional<LockFailureAction> on_lockfailure;
    std::optional<ConflictAction> on_conflict;
    std::optional<UnprotectedAction> on_unprotected;
    std::optional<uint32_t> unprotected_grace;
    std::optional<bool> resume_after_lockfailure = std::nullopt;
};

struct Discovery {
    bool open_files = true;
    std::vector<std::string> include = {"/var/lib/libvirt/images/*", "/dev/disk/by-path/*"};
    std::vector<std::string> exclude;
};

struct Config {
    uint32_t host_id = 0;  // required: 1..2000
    std::string lease_dir = "/var/lib/vmlease/leases";
    std::string lockspace = "__LIBVIRT__DISKS__";
    uint32_t io_timeout = 10;  // seconds, 1..300
    // Host slots in a lease file vmlease creates (1..2000); 0: sanlock's
    // 2000, as libvirt's plugin formats. Fewer slots make each acquire read
    // less (a ballot reads one 512-byte block per slot), but a host whose
    // host_id is above a file's slot count can never take that lease.
    uint32_t lease_max_hosts = 0;
    bool auto_disk_leases = true;
    ConflictAction on_conflict = ConflictAction::Terminate;
    LockFailureAction on_lockfailure = LockFailureAction::Poweroff;
    // A machine with a disk no lease protects (its acquire failed, another
    // host holds it, or it is still being taken) for longer than
    // unprotected_grace seconds: fail closed.
    UnprotectedAction on_unprotected = UnprotectedAction::Terminate;
    uint32_t unprotected_grace = 60;
    // on_lockfailure: pause: vmlease lets the machine go on (SIGCONT) once
    // every lease it held is taken back at the version it had; a lease
    // someone took meanwhile keeps it paused for good ("stale").
    bool resume_after_lockfailure = true;
    // Empty: the user and group sanlock runs as by default ("sanlock" when
    // both exist, as sanlock's own daemon decides; else root).
    std::string lease_file_user;
    std::string lease_file_group;
    Discovery discovery;
    std::vector<MachineRule> machines;
    std::string lockfailure_helper;  // empty: the installed vmlease-lockfailure
    std::string lease_holder;        // empty: the installed vmlease-holder
    // CleanupLeases leaves lease files younger than this alone (seconds).
    uint32_t cleanup_min_age = 3600;

    // Files that contributed, in the order they were applied (for logging).
    std::vector<std::string> sources;
};

}  // namespace vmlease
