// Carries out the registry's sanlock effects off the event loop: each
// registered sanlock connection has its own worker thread (sanlock runs one
// command at a time per connection), lease files that do not exist yet are
// made on formatter threads before their acquire reaches a lane, lockspace
// work and cleanup run on an admin worker, InspectDisk (anyone may call it)
// on a worker of its own so it can never delay a join, and every result is
// posted back to the loop.
#pragma once

#include "completion_queue.hpp"
#include "lease_cleanup.hpp"
#include "lease_holder.hpp"
#include "core/lease_registry.hpp"
#include "sanlock_client.hpp"
#include "worker.hpp"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace vmlease {

class SanlockEffector {
public:
    // `connections`: registered sanlock connections, one acquire in flight
    // on each; `sanlock_workers`: the sanlock daemon's worker threads, how
    // many acquires it carries out at once (sanlock_options.hpp).
    SanlockEffector(SanlockSettings settings, CompletionQueue &completions, unsigned connections,
                    unsigned sanlock_workers = 0);
    ~SanlockEffector();

    using Done = std::function<void(SanlockOutcome)>;
    // `done` runs on the loop thread.
    void acquire(const AcquireEffect &effect, Done done);
    void release(const ReleaseEffect &effect, Done done);
    // This host's temporary files a crash left in the lease directory are
    // removed; queued before the first join, so before any are created.
    void remove_stale_temporaries(std::function<void(size_t removed)> done);
    struct JoinOutcome {
        int rv = 0;
        std::string detail;
        // Once joined, a connection to watch for the sanlock daemon stopping
        // (see open_sanlock_watch), or -1 if none could be opened.
        int watch_fd = -1;
        // Once joined: vmlease-holder (lease_holder.hpp), or why there is none.
        HolderOutcome holder;
        // Joined before, and failed since: sanlock is stopping its clients.
        bool failing = false;
    };
    void join_lockspace(bool after_failure, std::function<void(JoinOutcome)> done);
    // vmlease-holder is asked to exit (its sentinel no longer keeps a failed
    // lockspace); `done` gets its pid, or 0 if none was running.
    void retire_holder(pid_t pid, std::function<void(pid_t)> done);
    // vmlease-holder runs (a new one if it died); `done` says which.
    void ensure_holder(std::function<void(HolderOutcome)> done);
    // After the releases already queued, every connection registers anew.
    void reconnect_all();
    void inspect(const std::string &resource, std::function<void(InspectOutcome)> done);
    void clean_up(std::set<std::string> held_here, uint32_t min_age_seconds, bool dry_run,
                  std::function<void(CleanupResult)> done);

    unsigned connections() const { return static_cast<unsigned>(lanes_.size()); }
    unsigned sanlock_workers() const { return sanlock_workers_; }
    // Acquires that were asked for while sanlock's workers were all busy with
    // ours: starting many machines at once would go faster with more.
    uint64_t acquires_waiting_for_workers() const { return waited_for_workers_; }


private:
    struct Lane {
        std::shared_ptr<SanlockConnection> connection;
        std::unique_ptr<Worker> worker;
    };
    size_t pick_lane() const;
    size_t pick_formatter();
    // The acquire on a lane; `formatted`: its lease files were just made.
    void to_lane(const AcquireEffect &effect, bool formatted, Done done);
    // Its missing lease files made first, then back to a lane.
    void to_formatter(const AcquireEffect &effect, Done done);

    SanlockSettings settings_;
    CompletionQueue::Poster post_;
    std::vector<Lane> lanes_;
    // Lease files are created and formatted on these (started when all are
    // busy, at most one per lane and kMaxFormatters), off the lanes.
    static constexpr size_t kMaxFormatters = 16;
    std::vector<std::unique_ptr<Worker>> formatters_;
    Worker admin_;
    Worker inspector_;
    std::unordered_map<std::string, size_t> lane_of_;  // resource -> lane holding it (loop thread only)
    unsigned sanlock_workers_;
    size_t acquires_in_flight_ = 0;   // loop thread only
    uint64_t waited_for_workers_ = 0;  // loop thread only
};

}  // namespace vmlease
