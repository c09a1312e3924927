// What sanlock's return codes mean to vmlease, in one place. The values of
// sanlock_rv.h are repeated here so the core needs no sanlock header.
#pragma once

#include <cerrno>

namespace vmlease::sanlock_rv {

inline constexpr int kAcquireLver = -240;       // SANLK_ACQUIRE_LVER: the lease's version moved on (someone took it)
inline constexpr int kAcquireLockspace = -241;  // SANLK_ACQUIRE_LOCKSPACE: lockspace not joined
inline constexpr int kAcquireIdLive = -243;     // SANLK_ACQUIRE_IDLIVE
inline constexpr int kAcquireOwnedRetry = -247; // SANLK_ACQUIRE_OWNED_RETRY
inline constexpr int kLeaderMagic = -223;       // SANLK_LEADER_MAGIC: not a (formatted) lease

// Another host holds the lease: -243..-247, or -EAGAIN when it holds it shared.
// (-EEXIST means another sanlock client on this host.)
inline bool held_by_other_host(int rv) { return (rv <= kAcquireIdLive && rv >= kAcquireOwnedRetry) || rv == -EAGAIN; }

// The connection to the sanlock daemon broke (the daemon stopped): what was
// held on it is an orphan still held by this host, not released.
inline bool connection_lost(int rv) { return rv == -EPIPE || rv == -ECONNRESET || rv == -ENOTCONN; }

}  // namespace vmlease::sanlock_rv
