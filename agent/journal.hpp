// The journal's view of what happened: each change a Step records, and each
// lock failure action's outcome, becomes one entry with the MESSAGE_ID the
// catalog (units/vmlease.catalog.in) explains. The daemon calls these once per
// Step; nothing else logs the same events.
#pragma once

#include "core/lease_registry.hpp"
#include "core/machine_tracker.hpp"
#include "core/step.hpp"

#include <string>

namespace vmlease::journal {

// Lease changes, conflicts, unprotected and stale machines, resumes, the
// lockspace's state: what `step` says changed. `machines` is read for each
// machine's policy (what happens next, in the entry's words).
void record(const Step &step, const MachineTracker &machines, const LeaseRegistry &registry,
          const std::string &lockspace);

// A lock failure action carried out (error empty) or not (error says why).
void lock_failure_action(const LockFailureChange &failure, const std::string &error, const std::string &lockspace);

// A lock failure whose action needed no machine effect (ignore, release):
// its leases are released.
void lock_failure_released(const LockFailureChange &failure, const std::string &lockspace);

// What CleanupLeases removed (or, in a dry run, would remove), kept, and
// could not handle.
void cleanup(const CleanupResult &result, bool dry_run);

}  // namespace vmlease::journal
