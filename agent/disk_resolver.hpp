// Where a disk path that a D-Bus caller named is looked at on the file
// system (stat, the udev database) to find its canonical name. Never on the
// event loop: a path on a hung NFS or FUSE mount would block stat(2) for
// good, and with it every D-Bus call and the watchdog. Each lookup runs on a
// thread of its own and is bounded: in time (the caller gets an error after
// kDiskLookupTimeoutUsec; the thread finishes, or stays stuck, on its own),
// and in number (per caller and in all), so that hung lookups cannot pile up.
#pragma once

#include "completion_queue.hpp"
#include "core/api_error.hpp"
#include "core/disk_namer.hpp"

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vmlease {

inline constexpr uint64_t kDiskLookupTimeoutUsec = 5 * 1000000;
inline constexpr size_t kMaxDiskLookupsPerCaller = 64;  // as many as may wait for polkit
// Two budgets, so that callers nobody authorized (InspectDisk is open to
// all) cannot use up the lookups an authorized AcquireDisk needs.
inline constexpr size_t kMaxDiskLookups = 256;          // authorized callers
inline constexpr size_t kMaxOpenDiskLookups = 32;       // callers of open methods

class DiskResolver {
public:
    DiskResolver(sd_event *event, CompletionQueue &completions);
    ~DiskResolver();
    DiskResolver(const DiskResolver &) = delete;
    DiskResolver &operator=(const DiskResolver &) = delete;

    struct Outcome {
        std::optional<ApiError> error;  // set: no names (limit reached, timed out)
        std::vector<DiskName> names;    // one per path, in order
    };
    using Done = std::function<void(Outcome)>;
    // Look up `paths` (absolute, lexically normalised) for bus client
    // `caller`; `authorized`: polkit (or root) allowed the call. `done`
    // runs on the loop, exactly once.
    void resolve(const std::string &caller, bool authorized, std::vector<std::string> paths, Done done);

    // Lookups whose thread has not finished (including timed-out ones).
    size_t in_flight() const { return in_flight_[0] + in_flight_[1]; }

private:
    struct Job {
        DiskResolver *self;
        uint64_t id;
        std::string caller;
        bool authorized;
        Done done;  // empty once answered
        sd_event_source *timer = nullptr;
    };
    static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata);
    void finished(uint64_t id, std::vector<DiskName> names);
    void answer(Job &job, Outcome outcome);

    sd_event *event_;
    CompletionQueue::Poster post_;
    uint64_t next_id_ = 1;
    std::map<uint64_t, std::unique_ptr<Job>> jobs_;
    std::map<std::string, size_t> per_caller_;
    size_t in_flight_[2] = {0, 0};  // [authorized]
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vmlease
