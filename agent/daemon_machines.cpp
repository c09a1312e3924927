// Machines as systemd-machined and udev report them: appeared, gone, listed,
// their open files scanned, devices added and removed, reservations expiring.
#include "daemon.hpp"
#include "daemon_internal.hpp"

#include "atomic_file.hpp"
#include "core/lock_failure_effect.hpp"
#include "core/owner_name.hpp"
#include "core/sanlock_codes.hpp"
#include "disk_discovery.hpp"
#include "core/disk_path.hpp"
#include "guarded.hpp"
#include "journal.hpp"
#include "lockfailure_plan.hpp"
#include "log.hpp"
#include "open_file_scanner.hpp"
#include "signal_origin.hpp"
#include "udev_disk_namer.hpp"

#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

namespace vmlease {

using namespace daemon_internal;

void Daemon::arm_grace_timer() {
    if (grace_deadlines_.empty()) {
        sd_event_source_set_enabled(grace_timer_, SD_EVENT_OFF);
        return;
    }
    uint64_t next = UINT64_MAX;
    for (const auto &[name, deadline] : grace_deadlines_)
        next = std::min(next, deadline);
    sd_event_source_set_time(grace_timer_, next);
    sd_event_source_set_enabled(grace_timer_, SD_EVENT_ONESHOT);
}

int Daemon::on_grace_timer(sd_event_source *, uint64_t usec, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    run_guarded("expiring reservations", [&] {
        std::vector<std::string> expired;
        for (const auto &[name, deadline] : self->grace_deadlines_)
            if (deadline <= usec)
                expired.push_back(name);
        for (const auto &name : expired) {
            self->grace_deadlines_.erase(name);
            const Machine *m = self->tracker_.find(name);
            if (m && m->reserved)
                log_notice("reservation for " + name + " expired before the machine appeared; releasing its disks",
                           {{"OWNER", name}});
            self->apply(self->tracker_.reservation_expired(name));
        }
        self->arm_grace_timer();
    });
    return 0;
}

// --- machines ------------------------------------------------------------------

// Read once, when the machine is first seen: a leader that died and whose
// pid was reused since must not lend the new process its start time.
uint64_t Daemon::leader_start_time(const std::string &machine, uint32_t leader) {
    auto it = leader_start_.find(machine);
    if (it != leader_start_.end() && it->second.first == leader)
        return it->second.second;
    uint64_t start = process_start_time(static_cast<pid_t>(leader)).value_or(0);
    leader_start_[machine] = {leader, start};
    return start;
}

void Daemon::machine_appeared(const MachineInfo &info) {
    if (const Machine *old = tracker_.find(info.name);
        old && !old->reserved && old->info.leader && info.leader && old->info.leader != info.leader) {
        // Another machine under the same name: the one we knew is gone.
        log_info("machine " + info.name + " has a new leader (" + std::to_string(info.leader) + ", was " +
                     std::to_string(old->info.leader) + "): the old one is gone",
                 {{"OWNER", info.name}});
        machine_gone(info.name);
    }
    leader_start_time(info.name, info.leader);
    bool known = tracker_.find(info.name) != nullptr;
    apply(tracker_.machine_appeared(info));
    if (!known && tracker_.find(info.name)) {
        log_info("machine " + info.name + " (" + info.machine_class + ", leader " + std::to_string(info.leader) +
                     ") appeared",
                 {{"OWNER", info.name}});
        scan_machine(info.name);
        young_[info.name] = {info.leader, now_usec() + kYoungUsec};
        arm_dense_scan();
    }
}

void Daemon::arm_dense_scan() {
    if (dense_armed_ || young_.empty())
        return;
    dense_armed_ = true;
    after(kDenseScanUsec, [this] {
        dense_armed_ = false;
        uint64_t now = now_usec();
        for (auto it = young_.begin(); it != young_.end();) {
            const Machine *m = tracker_.find(it->first);
            bool found = m && std::any_of(m->disks.begin(), m->disks.end(), [](const MachineDisk &d) {
                return d.source == MachineDisk::Source::Discovered;
            });
            if (!m || m->info.leader != it->second.first || it->second.second < now || found)
                it = young_.erase(it);
            else
                ++it;
        }
        // Round robin from where the last tick stopped.
        auto it = young_.upper_bound(dense_last_);
        for (size_t n = 0; n < std::min(kDensePerTick, young_.size()); n++, ++it) {
            if (it == young_.end())
                it = young_.begin();
            scan_machine(it->first);
            dense_last_ = it->first;
        }
        arm_dense_scan();
    });
}

void Daemon::machine_gone(const std::string &name) {
    if (tracker_.find(name))
        log_info("machine " + name + " went away; releasing its leases", {{"OWNER", name}});
    leader_start_.erase(name);
    stopped_instead_.erase(name);
    apply(tracker_.machine_gone(name));
    if (to_restore_ && after_failure_)
        maybe_reconcile();  // its orphans in the failed lockspace can go now
}

void Daemon::machines_listed(bool ok, const std::vector<std::string> &names) {
    if (ok) {
        tracker_.forget_saved(names);  // pins and pauses of machines that ended while we were away
        // Reconcile: machines that ended while machined (or we) looked away.
        std::vector<std::string> gone = tracker_.not_listed(names);
        std::string ended = join_owners(gone);
        log_info("systemd-machined listed " + std::to_string(names.size()) + " machine(s)" +
                 (ended.empty() ? "" : "; ended meanwhile: " + ended));
        for (const auto &name : gone)
            machine_gone(name);
    }
    listing_done_ = true;
    machines_known_ = ok;
    maybe_reconcile();
    if (!ready_) {
        ready_ = true;
        // Start-up (configuration parsing above all) leaves freed heap behind.
        malloc_trim(0);
        sd_notify(0, "READY=1");
        notify_status();
    }
}

void Daemon::device_changed(const DeviceEvent &event) {
    if (manager_)
        manager_->device_changed(event);
    if (event.kind == DeviceEvent::Kind::Added) {
        log_message(LOG_DEBUG, "block device " + event.name + " appeared", {{"DISK", event.name}},
                    message_id::kDeviceAdded);
        apply(tracker_.device_appeared());
        return;
    }
    const Lease *lease = registry_.find_device(event.name, event.identity);
    if (!lease) {
        log_message(LOG_DEBUG, "block device " + event.name + " went away", {{"DISK", event.name}},
                    message_id::kDeviceRemoved);
        return;
    }
    // The lease lives in the shared lease directory, not on the device: it
    // stays held, so no other host can take the disk when the LUN comes back.
    std::string owners = join_owners(lease->owners, ",");
    log_message(LOG_WARNING,
                "block device " + event.name + " went away while leased by " + owners + "; the lease stays held",
                {{"DISK", event.name}, {"RESOURCE", lease->resource}, {"OWNER", owners}}, message_id::kDeviceRemoved);
}

void Daemon::scan_machine(const std::string &name) {
    const Machine *m = tracker_.find(name);
    if (!m || !config_.auto_disk_leases || !config_.discovery.open_files || m->info.leader == 0)
        return;
    pid_t leader = static_cast<pid_t>(m->info.leader);
    // One scan per machine at a time, each on a thread of its own: a file a
    // VM holds open on a hung mount stalls that machine's scan (stat(2)
    // never returns), not every machine's, and never the event loop.
    std::string key = name + "/" + std::to_string(leader);
    if (scanning_.count(key) || scanning_.size() >= kMaxScans)
        return;
    try {
        std::thread([leader, name, key, discovery = config_.discovery, post = completions_.poster(), this] {
            std::vector<OpenFile> files;
            ResolvedPatterns patterns;
            bool scanned = true;
            try {
                files = open_files(machine_processes(leader));
                name_open_files(files, UdevDiskNamer());
                patterns = resolve_patterns(discovery);
            } catch (const std::exception &) {
                scanned = false;  // nothing learnt this time (not "nothing open"); the next scan tries again
            }
            post([this, name, key, scanned, files = std::move(files), patterns = std::move(patterns)] {
                scanning_.erase(key);
                if (scanned)
                    apply(tracker_.files_discovered(name, files, patterns));
            });
        }).detach();
        scanning_.insert(key);
    } catch (const std::system_error &e) {
        log_error("cannot scan machine " + name + ": " + e.what(), {{"OWNER", name}});
    }
}

int Daemon::on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
    auto *self = static_cast<Daemon *>(userdata);
    // A machine whose last scan is still running is not scanned again.
    run_guarded("scanning machines", [&] {
        for (const auto &[name, m] : self->tracker_.machines())
            self->scan_machine(name);
    });
    sd_event_source_set_time(s, usec + kScanIntervalUsec);
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    return 0;
}

}  // namespace vmlease
