// The lease registry is where every lease decision is made. It owns the
// state of all leases on this host and of the lockspace, takes requests and
// sanlock outcomes as input, and answers with a Step: what sanlock must do
// next, which callers get which reply, and what changed (for signals). It
// does no I/O and includes no system library, so it is unit-tested alone.
#pragma once

#include "api_error.hpp"
#include "config.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace vmlease {

enum class LockspaceState { Absent, Joining, Joined, Failed, Rejoining };
const char *to_string(LockspaceState s);

enum class LeaseState { Acquiring, Held, Releasing };
const char *to_string(LeaseState s);

// One sanlock resource on this host. A shared lease may have several owners
// on this host; sanlock sees one lease, released when the last owner goes.
struct Lease {
    std::string disk;      // canonical path
    std::string resource;  // MD5 hex of disk
    LeaseMode mode = LeaseMode::Exclusive;
    LeaseState state = LeaseState::Acquiring;
    std::vector<std::string> owners;  // empty while acquiring
};

using RequestId = uint64_t;

// --- effects: what the sanlock effector must carry out -------------------
struct AcquireEffect {
    std::string resource;
    std::string disk;
    LeaseMode mode;
};
struct ReleaseEffect {
    std::string resource;
};
using SanlockEffect = std::variant<AcquireEffect, ReleaseEffect>;

// --- replies to callers ---------------------------------------------------
struct Reply {
    RequestId request;
    std::optional<ApiError> error;  // nullopt: success
    std::string resource;           // the lease the reply is about (AcquireDisk returns its object)
};

// --- changes: what happened, for signals and properties -------------------
struct LeaseChange {
    enum class Kind { Acquired, Released } kind;
    std::string owner;
    Lease lease;          // snapshot after the change
    bool lease_gone = false;  // Released and no owner left: the lease object goes away
};

struct Step {
    std::vector<SanlockEffect> effects;
    std::vector<Reply> replies;
    std::vector<LeaseChange> changes;
    bool lockspace_state_changed = false;

    void append(Step &&other);
};

// What sanlock said about an acquire or release.
struct SanlockOutcome {
    int rv = 0;                             // sanlock's return code (0 or negative)
    std::vector<uint64_t> holder_host_ids;  // for a lease held elsewhere, if they could be read
    std::string detail;                     // human-readable explanation of a failure
};

// Upper bound on leases one host tracks; beyond it callers get LimitsExceeded.
inline constexpr size_t kMaxLeases = 20000;

class LeaseRegistry {
public:
    explicit LeaseRegistry(uint32_t host_id) : host_id_(host_id) {}

    // Requests. `disk` must already be canonical (see disk_path.hpp).
    Step acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                 LeaseMode mode);
    Step release(RequestId id, const std::string &owner, const std::string &resource);
    Step release_owner(RequestId id, const std::string &owner);

    // Outcomes of effects, posted back by the effector.
    Step acquire_done(const std::string &resource, const SanlockOutcome &outcome);
    Step release_done(const std::string &resource, const SanlockOutcome &outcome);

    Step set_lockspace_state(LockspaceState state);

    LockspaceState lockspace_state() const { return lockspace_state_; }
    const std::map<std::string, Lease> &leases() const { return leases_; }
    const Lease *find(const std::string &resource) const;
    uint32_t host_id() const { return host_id_; }

private:
    struct Waiter {
        RequestId request;
        std::string owner;
        LeaseMode mode;
    };
    struct Removal {
        RequestId request;
        std::string owner;
    };
    // A request that completes when several leases are released (ReleaseMachine).
    struct MultiRelease {
        size_t remaining = 0;
        std::optional<ApiError> first_error;
    };
    struct Pending {
        std::vector<Waiter> acquirers;     // replied when the acquire completes
        std::vector<Removal> releasers;    // replied when the release completes
        std::vector<Waiter> after_release; // acquires that arrived while releasing
    };

    Step start_acquire(RequestId id, const std::string &owner, const std::string &disk, const std::string &resource,
                       LeaseMode mode);
    Step remove_owner(RequestId id, const std::string &owner, Lease &lease);
    void finish_release_part(Step &step, RequestId id, std::optional<ApiError> error, const std::string &resource);
    ApiError held_error(const Lease &lease, const std::string &disk) const;

    uint32_t host_id_;
    LockspaceState lockspace_state_ = LockspaceState::Absent;
    std::map<std::string, Lease> leases_;  // by resource; ordered so listings are stable
    std::map<std::string, Pending> pending_;
    std::map<RequestId, MultiRelease> multi_;
};

}  // namespace vmlease
