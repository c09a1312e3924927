#include "sanlock_effector.hpp"

#include "lease_holder.hpp"

#include "core/sanlock_codes.hpp"
#include "log.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

namespace vmlease {
namespace {

// A lease file another host (or libvirt's plugin, which formats in place)
// has just created may not be formatted yet; give its creator a moment.
bool freshly_created(const std::string &path) {
    struct stat st {};
    if (stat(path.c_str(), &st) < 0)
        return false;
    return time(nullptr) - st.st_mtime < 10;
}

// One sanlock call for all of `resources` (a lease and its aliases).
void acquire_all(const SanlockSettings &s, SanlockConnection &conn, const std::vector<std::string> &resources,
                 bool shared, bool adopt_orphan, const LeaseVersions &pinned, SanlockOutcome &out) {
    // A pinned lease whose file is not the one it was held in (removed and
    // made anew, versions from 0 again) moved on like one another host took.
    std::map<std::string, uint64_t> pins;
    for (const auto &[name, version] : pinned) {
        if (std::find(resources.begin(), resources.end(), name) == resources.end())
            continue;
        if (version.file && lease_file_identity(s, name) != version.file) {
            out.rv = sanlock_rv::kAcquireLver;
            out.detail = "the lease file " + lease_file_path(s, name) + " was removed and made anew since";
            return;
        }
        pins[name] = version.lver;
    }
    std::map<std::string, uint64_t> lvers;
    for (int attempt = 0;; attempt++) {
        lvers.clear();
        out.rv = conn.acquire(resources, shared, false, true, pins, &lvers);
        // -EUCLEAN: this host already holds it, as an orphan of an earlier
        // vmleased connection (leases are PERSISTENT). The registry decided
        // whether this owner may take it over.
        if (out.rv == -EUCLEAN && adopt_orphan)
            out.rv = conn.acquire(resources, shared, true, true, pins, &lvers);
        bool fresh = false;
        for (const auto &r : resources)
            fresh = fresh || freshly_created(lease_file_path(s, r));
        if (out.rv != sanlock_rv::kLeaderMagic || attempt >= 20 || !fresh)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    out.detail = out.rv < 0 ? sanlock_strerror(out.rv) + sanlock_open_hint(out.rv, lease_file_path(s, resources.front()))
                            : "";
    if (out.rv != 0)
        return;
    // A pinned acquire lands exactly one past the pin (sanlock's ballot
    // raises the version it checked): known even if reading it back failed.
    for (const auto &[name, lver] : pins)
        if (!lvers.count(name) && lver != 0)
            lvers[name] = lver + 1;
    out.versions.clear();
    for (const auto &[name, lver] : lvers)
        out.versions[name] = {lver, lease_file_identity(s, name)};
}

}  // namespace

SanlockEffector::SanlockEffector(SanlockSettings settings, CompletionQueue &completions, unsigned connections,
                                 unsigned sanlock_workers)
    : settings_(std::move(settings)), post_(completions.poster()), sanlock_workers_(sanlock_workers) {
    for (unsigned i = 0; i < std::max(1u, connections); i++)
        lanes_.push_back({std::make_shared<SanlockConnection>(settings_), std::make_unique<Worker>()});
}

SanlockEffector::~SanlockEffector() = default;

size_t SanlockEffector::pick_lane() const {
    size_t best = 0;
    for (size_t i = 1; i < lanes_.size(); i++)
        if (lanes_[i].worker->backlog() < lanes_[best].worker->backlog())
            best = i;
    return best;
}

void SanlockEffector::acquire(const AcquireEffect &effect, Done done) {
    if (sanlock_workers_ && acquires_in_flight_ >= sanlock_workers_)
        waited_for_workers_++;
    acquires_in_flight_++;
    done = [this, done = std::move(done)](SanlockOutcome out) {
        acquires_in_flight_--;
        done(std::move(out));
    };
    to_lane(effect, false, std::move(done));
}

size_t SanlockEffector::pick_formatter() {
    size_t best = 0;
    for (size_t i = 1; i < formatters_.size(); i++)
        if (formatters_[i]->backlog() < formatters_[best]->backlog())
            best = i;
    // A new formatter only when every one is busy: an agent whose lease
    // files all exist has none. At most one per lane, and at most 16: more
    // threads writing new files do not make more files (each is a megabyte
    // written and an fsync of the lease directory's file system).
    if (formatters_.empty() ||
        (formatters_[best]->backlog() > 0 && formatters_.size() < std::min<size_t>(lanes_.size(), kMaxFormatters))) {
        try {
            formatters_.push_back(std::make_unique<Worker>());
            best = formatters_.size() - 1;
        } catch (const std::exception &) {
            if (formatters_.empty())
                throw;  // none to wait for
        }
    }
    return best;
}

void SanlockEffector::to_formatter(const AcquireEffect &effect, Done done) {
    size_t formatter;
    try {
        formatter = pick_formatter();
    } catch (const std::exception &e) {  // no thread could be started (TasksMax, memory)
        SanlockOutcome out;
        out.io_errno = EAGAIN;
        out.detail = std::string("cannot start a thread to make the lease file: ") + e.what();
        return done(std::move(out));
    }
    formatters_[formatter]->submit([this, s = settings_, post = post_, effect, done = std::move(done)]() mutable {
        FileOutcome file;
        if (file = ensure_lease_file(s, effect.resource); file.ok())
            for (const auto &r : effect.alias_resources)
                if (file = ensure_lease_file(s, r); !file.ok())
                    break;
        post([this, effect, file = std::move(file), done = std::move(done)]() mutable {
            if (file.ok())
                return to_lane(effect, true, std::move(done));
            SanlockOutcome out;
            out.io_errno = file.io_errno;
            out.rv = file.sanlock_rv;
            out.detail = file.detail;
            done(std::move(out));
        });
    });
}

void SanlockEffector::to_lane(const AcquireEffect &effect, bool formatted, Done done) {
    size_t lane = pick_lane();
    lane_of_[effect.resource] = lane;
    lanes_[lane].worker->submit([this, s = settings_, conn = lanes_[lane].connection, post = post_, effect, formatted,
                                 done = std::move(done)]() mutable {
        SanlockOutcome out;
        std::vector<std::string> resources{effect.resource};
        resources.insert(resources.end(), effect.alias_resources.begin(), effect.alias_resources.end());
        // A lease file that is missing is made on a formatter, and the
        // acquire comes back to a lane once it is: a lane never writes a
        // megabyte while another machine's acquire waits behind it. Once
        // made, the files are not looked at again: one removed (or left
        // short by another host's creator) meanwhile fails in sanlock, and
        // the acquire is retried as any failed one.
        if (!formatted && !lease_files_exist(s, resources))
            return post([this, effect, done = std::move(done)]() mutable { to_formatter(effect, std::move(done)); });
        bool shared = effect.mode == LeaseMode::Shared;
        // Aliases the VM's own sanlock client holds are left out before
        // asking: a call that fails on one of them would make sanlock
        // give back, on disk, an orphan it had just adopted in the same call.
        if (effect.owner_pid > 0)
            for (const auto &r : effect.alias_resources)
                if (process_holds(s, effect.owner_pid, r)) {
                    out.owner_held_aliases.push_back(r);
                    resources.erase(std::find(resources.begin(), resources.end(), r));
                }
        acquire_all(s, *conn, resources, shared, effect.adopt_orphan, effect.pins, out);
        // -EEXIST: another sanlock client on this host holds one of them.
        // If that is the machine's own leader (libvirt's plugin), the VM
        // is protected already under that name: under its identity, it
        // is not ours at all; under an alias, the rest is taken without it.
        if (out.rv == -EEXIST && effect.owner_pid > 0) {
            std::vector<std::string> rest, held;
            for (const auto &r : resources)
                (process_holds(s, effect.owner_pid, r) ? held : rest).push_back(r);
            if (!held.empty() && held.front() == effect.resource) {
                out.held_by_owner_process = true;
                out.owner_held_aliases.clear();
            } else if (!held.empty()) {
                // It took one meanwhile: the rest without it.
                out.owner_held_aliases.insert(out.owner_held_aliases.end(), held.begin(), held.end());
                acquire_all(s, *conn, rest, shared, effect.adopt_orphan, effect.pins, out);
            }
        }

        if (sanlock_rv::held_by_other_host(out.rv) || out.rv == sanlock_rv::kAcquireLver) {
            // Whichever of its names another host holds (libvirt's
            // plugin takes the literal path's).
            for (const auto &r : resources) {
                std::vector<LeaseOwner> owners;
                if (read_lease_owners(s, r, owners) == 0)
                    for (const auto &o : owners)
                        if (o.host_id != s.host_id)
                            out.holder_host_ids.push_back(o.host_id);
                if (!out.holder_host_ids.empty())
                    break;
            }
        }
        post([done = std::move(done), out = std::move(out)] { done(out); });
    });
}

void SanlockEffector::release(const ReleaseEffect &effect, Done done) {
    // The release must go to the connection that holds the lease; the mapping
    // is dropped only once sanlock has answered, so a retry finds it too.
    auto it = lane_of_.find(effect.resource);
    size_t lane = it == lane_of_.end() ? 0 : it->second;
    lanes_[lane].worker->submit([this, conn = lanes_[lane].connection, post = post_, effect,
                                 done = std::move(done)]() mutable {
        SanlockOutcome out;
        if (effect.orphan) {
            out.rv = conn->release_orphan(effect.resource);
            // Its aliases were orphaned with it; each is given back on its own.
            for (const auto &r : effect.alias_resources)
                if (int rv = conn->release_orphan(r); rv < 0 && out.rv >= 0)
                    out.rv = rv;
        } else {
            std::vector<std::string> resources{effect.resource};
            resources.insert(resources.end(), effect.alias_resources.begin(), effect.alias_resources.end());
            out.rv = conn->release(resources);
        }
        if (out.rv < 0)
            out.detail = sanlock_strerror(out.rv);
        post([this, resource = effect.resource, done = std::move(done), out = std::move(out)] {
            if (!sanlock_rv::connection_lost(out.rv))
                lane_of_.erase(resource);
            done(out);
        });
    });
}

void SanlockEffector::reconnect_all() {
    for (auto &lane : lanes_)
        lane.worker->submit([connection = lane.connection] { connection->reconnect(); });
}

void SanlockEffector::remove_stale_temporaries(std::function<void(size_t removed)> done) {
    admin_.submit([s = settings_, post = post_, done = std::move(done)]() mutable {
        size_t removed = vmlease::remove_stale_temporaries(s);
        post([done = std::move(done), removed] { done(removed); });
    });
}

void SanlockEffector::join_lockspace(bool after_failure, std::function<void(JoinOutcome)> done) {
    admin_.submit([s = settings_, post = post_, after_failure, done = std::move(done)]() mutable {
        std::string detail;
        int watch_fd = -1;
        HolderOutcome holder;
        bool failing = false;
        FileOutcome file = ensure_lockspace_file(s);
        int rv = file.io_errno ? -file.io_errno : file.sanlock_rv;
        detail = file.detail;
        if (file.ok()) {
            rv = vmlease::join_lockspace(s, after_failure);
            if (rv == 0) {
                watch_fd = open_sanlock_watch();
                // Before any lease is taken: orphans keep a failed lockspace
                // (and sanlock's watchdog) in place, and a live client with
                // the killpath exists while the agent does not.
                int r = keep_lockspace_for_orphans(s);
                if (r == -ENOSPC) {
                    // Listed, but sanlock is stopping its clients: it failed
                    // (while this agent was not running) and is on its way out.
                    // Its holder, if any, is retired once nothing of ours is
                    // left in it (sanlock may never kill it: a renewal that
                    // works again extends its grace for good).
                    failing = true;
                    holder.pid = find_lease_holder(s);
                } else {
                    if (r < 0)
                        holder.problem = "sanlock would not keep a failed lockspace for orphan leases (" +
                                         sanlock_strerror(r) + "); ";
                    HolderOutcome h = ensure_lease_holder(s);
                    h.problem = holder.problem + h.problem;
                    holder = std::move(h);
                }
            }
            if (rv == -ENOENT)  // from sanlock: no socket to connect to
                detail = "the sanlock daemon is not running (" + sanlock_strerror(rv) + "); waiting for it";
            else if (rv == -EEXIST)
                detail = "lockspace " + s.lockspace + " is still being removed after its failure";
            else if (rv < 0)
                detail = "sanlock could not join lockspace " + s.lockspace + " as host " + std::to_string(s.host_id) +
                         ": " + sanlock_strerror(rv) + sanlock_open_hint(rv, s.lease_dir + "/" + s.lockspace);
        }
        if (rv == -ECONNREFUSED)  // a socket nobody listens on: sanlock stopped or crashed
            detail = "the sanlock daemon is not running (" + sanlock_strerror(rv) + "); waiting for it";
        post([done = std::move(done), rv, detail = std::move(detail), watch_fd, holder = std::move(holder), failing] {
            done(JoinOutcome{rv, detail, watch_fd, holder, failing});
        });
    });
}

void SanlockEffector::ensure_holder(std::function<void(HolderOutcome)> done) {
    admin_.submit([s = settings_, post = post_, done = std::move(done)]() mutable {
        HolderOutcome h = ensure_lease_holder(s);
        post([done = std::move(done), h = std::move(h)] { done(h); });
    });
}

void SanlockEffector::retire_holder(pid_t holder, std::function<void(pid_t)> done) {
    admin_.submit([s = settings_, post = post_, holder, done = std::move(done)]() mutable {
        pid_t pid = stop_lease_holder(s, holder);
        post([done = std::move(done), pid] { done(pid); });
    });
}

void SanlockEffector::inspect(const std::string &resource, std::function<void(InspectOutcome)> done) {
    inspector_.submit([s = settings_, post = post_, resource, done = std::move(done)]() mutable {
        InspectOutcome out;
        out.lease_file = lease_file_path(s, resource);
        out.rv = read_lease_owners(s, resource, out.owners, &out.version);
        if (out.rv < 0)
            out.detail = sanlock_strerror(out.rv);
        post([done = std::move(done), out = std::move(out)] { done(out); });
    });
}

void SanlockEffector::clean_up(std::set<std::string> held_here, uint32_t min_age_seconds, bool dry_run,
                               std::function<void(CleanupResult)> done) {
    admin_.submit([s = settings_, post = post_, held = std::move(held_here), min_age_seconds, dry_run,
                   done = std::move(done)]() mutable {
        CleanupResult result = clean_up_lease_files(s, held, min_age_seconds, dry_run);
        post([done = std::move(done), result = std::move(result)] { done(result); });
    });
}

}  // namespace vmlease
