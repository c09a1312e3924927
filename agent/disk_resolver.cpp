#include "disk_resolver.hpp"

#include "udev_disk_namer.hpp"

#include <thread>

namespace vmlease {

DiskResolver::DiskResolver(sd_event *event, CompletionQueue &completions)
    : event_(sd_event_ref(event)), post_(completions.poster()) {}

DiskResolver::~DiskResolver() {
    *alive_ = false;
    for (auto &[id, job] : jobs_)
        sd_event_source_disable_unref(job->timer);
    sd_event_unref(event_);
}

void DiskResolver::resolve(const std::string &caller, bool authorized, std::vector<std::string> paths, Done done) {
    size_t &in_flight = in_flight_[authorized];
    if (in_flight >= (authorized ? kMaxDiskLookups : kMaxOpenDiskLookups))
        return done({ApiError{ErrorKind::LimitsExceeded,
                               std::to_string(in_flight) + " disk lookups are in progress (is a file system hung?); "
                                                           "try again later"},
                     {}});
    if (per_caller_[caller] >= kMaxDiskLookupsPerCaller)
        return done({ApiError{ErrorKind::LimitsExceeded,
                              "this caller already has " + std::to_string(kMaxDiskLookupsPerCaller) +
                                  " disk lookups in progress (is a file system hung?)"},
                     {}});
    uint64_t id = next_id_++;
    auto job = std::make_unique<Job>(Job{this, id, caller, authorized, std::move(done)});
    int r = sd_event_add_time_relative(event_, &job->timer, CLOCK_MONOTONIC, kDiskLookupTimeoutUsec, 0, on_timeout,
                                       job.get());
    if (r < 0)
        return job->done({ApiError{ErrorKind::Failed, "cannot time a disk lookup"}, {}});
    try {
        std::thread([paths = std::move(paths), post = post_, id, alive = alive_, this] {
            // A namer of its own: the udev context is not shared between threads.
            std::vector<DiskName> names;
            try {
                UdevDiskNamer namer;
                for (const auto &p : paths)
                    names.push_back(namer.canonical(p));
            } catch (const std::exception &e) {
                names.assign(paths.size(), DiskName{DiskName::Kind::Invalid, e.what()});
            }
            post([this, id, alive, names = std::move(names)]() mutable {
                if (*alive)
                    finished(id, std::move(names));
            });
        }).detach();
    } catch (const std::system_error &e) {
        sd_event_source_disable_unref(job->timer);
        return job->done({ApiError{ErrorKind::Failed, std::string("cannot look up the disk: ") + e.what()}, {}});
    }
    in_flight++;
    per_caller_[caller]++;
    jobs_.emplace(id, std::move(job));
}

void DiskResolver::answer(Job &job, Outcome outcome) {
    sd_event_source_disable_unref(job.timer);
    job.timer = nullptr;
    if (!job.done)
        return;
    Done done = std::move(job.done);
    job.done = nullptr;
    done(std::move(outcome));
}

int DiskResolver::on_timeout(sd_event_source *, uint64_t, void *userdata) {
    auto *job = static_cast<Job *>(userdata);
    // The thread goes on (it may be stuck in the kernel for good); it still
    // counts against the limits until it returns.
    job->self->answer(*job, {ApiError{ErrorKind::Failed, "looking up the disk path took longer than " +
                                                             std::to_string(kDiskLookupTimeoutUsec / 1000000) +
                                                             " s; is its file system hung?"},
                             {}});
    return 0;
}

void DiskResolver::finished(uint64_t id, std::vector<DiskName> names) {
    auto it = jobs_.find(id);
    if (it == jobs_.end())
        return;
    Job &job = *it->second;
    in_flight_[job.authorized]--;
    if (--per_caller_[job.caller] == 0)
        per_caller_.erase(job.caller);
    answer(job, {std::nullopt, std::move(names)});
    jobs_.erase(it);
}

}  // namespace vmlease
