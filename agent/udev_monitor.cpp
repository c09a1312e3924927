#include "udev_monitor.hpp"

#include "log.hpp"
#include "udev_disk_namer.hpp"

#include <libudev.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

namespace vmlease {
namespace {

DeviceEvent::Names names_of(udev_device *device) {
    DeviceEvent::Names n;
    if (auto by_path = by_path_name(device))
        n.name = *by_path;
    else if (const char *node = udev_device_get_devnode(device))
        n.name = node;
    n.identity = stable_device_name(device).value_or("");
    return n;
}

}  // namespace

UdevMonitor::UdevMonitor(sd_event *event, Handler handler) : event_(event), handler_(std::move(handler)) {
    udev_ = udev_new();
    if (!udev_)
        throw std::runtime_error("cannot create a udev context");
    monitor_ = udev_monitor_new_from_netlink(udev_, "udev");
    if (!monitor_) {
        udev_unref(udev_);
        throw std::runtime_error(std::string("cannot create a udev monitor: ") + std::strerror(errno));
    }
}

UdevMonitor::~UdevMonitor() {
    sd_event_source_disable_unref(source_);
    udev_monitor_unref(monitor_);
    udev_unref(udev_);
}

void UdevMonitor::start() {
    int r = udev_monitor_filter_add_match_subsystem_devtype(monitor_, "block", nullptr);
    if (r >= 0)
        r = udev_monitor_filter_add_match_tag(monitor_, kUdevTag);
    if (r < 0)
        throw std::runtime_error(std::string("cannot filter udev events: ") + std::strerror(-r));
    // Needs CAP_NET_ADMIN beyond rmem_max; without it the default stays and
    // an overflow is still caught (ENOBUFS -> enumerate again).
    if (udev_monitor_set_receive_buffer_size(monitor_, kUdevReceiveBuffer) < 0)
        log_debug("cannot enlarge the udev monitor's receive buffer; keeping the default");
    r = udev_monitor_enable_receiving(monitor_);
    if (r < 0)
        throw std::runtime_error(std::string("cannot receive udev events: ") + std::strerror(-r));
    r = sd_event_add_io(event_, &source_, udev_monitor_get_fd(monitor_), EPOLLIN, on_readable, this);
    if (r < 0)
        throw std::runtime_error(std::string("cannot watch udev events: ") + std::strerror(-r));
    // Below D-Bus: during an event storm, calls are still answered between batches.
    sd_event_source_set_priority(source_, SD_EVENT_PRIORITY_NORMAL + 10);
    // Subscribed first, then enumerated: a device added in between shows up
    // in both, and the second sighting changes nothing.
    enumerate();
}

int UdevMonitor::on_readable(sd_event_source *, int, uint32_t, void *userdata) {
    auto *self = static_cast<UdevMonitor *>(userdata);
    try {
        self->receive_batch();
    } catch (const std::exception &e) {
        log_error(std::string("handling a udev event failed: ") + e.what());
    }
    return 0;
}

void UdevMonitor::receive_batch() {
    for (unsigned i = 0; i < kUdevBatch; i++) {
        errno = 0;
        udev_device *device = udev_monitor_receive_device(monitor_);
        if (!device) {
            if (errno == ENOBUFS) {
                // The kernel dropped events for us: what we know may be stale.
                resyncs_++;
                log_warning("udev events were lost (receive buffer overflow); enumerating block devices again");
                enumerate();
                continue;
            }
            return;  // drained (EAGAIN) or a malformed message, already skipped
        }
        received_++;
        const char *action = udev_device_get_action(device);
        if (action && std::strcmp(action, "remove") == 0)
            gone(udev_device_get_syspath(device));
        else
            seen(device);
        udev_device_unref(device);
    }
}

void UdevMonitor::seen(udev_device *device) {
    std::string syspath = udev_device_get_syspath(device);
    DeviceEvent::Names names = names_of(device);
    auto it = known_.find(syspath);
    if (it != known_.end()) {
        if (it->second.name == names.name) {
            it->second.identity = names.identity;  // e.g. udev filled in its serial late: not a new device
            return;  // a change that renames nothing
        }
        DeviceEvent::Names old = it->second;
        known_.erase(it);
        handler_({DeviceEvent::Kind::Removed, old.name, old.identity});
    }
    if (names.name.empty())
        return;
    if (known_.size() >= kMaxTrackedDevices) {
        if (!warned_full_)
            log_warning("more than " + std::to_string(kMaxTrackedDevices) + " tagged block devices; ignoring the rest");
        warned_full_ = true;
        return;
    }
    known_.emplace(syspath, names);
    handler_({DeviceEvent::Kind::Added, names.name, names.identity});
}

void UdevMonitor::gone(const std::string &syspath) {
    auto it = known_.find(syspath);
    if (it == known_.end())
        return;
    DeviceEvent::Names names = it->second;
    known_.erase(it);
    handler_({DeviceEvent::Kind::Removed, names.name, names.identity});
}

void UdevMonitor::enumerate() {
    udev_enumerate *e = udev_enumerate_new(udev_);
    if (!e)
        throw std::runtime_error("cannot enumerate block devices");
    udev_enumerate_add_match_subsystem(e, "block");
    udev_enumerate_add_match_tag(e, kUdevTag);
    int r = udev_enumerate_scan_devices(e);
    if (r < 0) {
        udev_enumerate_unref(e);
        throw std::runtime_error(std::string("cannot enumerate block devices: ") + std::strerror(-r));
    }
    std::set<std::string> present;
    udev_list_entry *entry = nullptr;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
        udev_device *device = udev_device_new_from_syspath(udev_, udev_list_entry_get_name(entry));
        if (!device)
            continue;  // gone since the scan
        present.insert(udev_device_get_syspath(device));
        seen(device);
        udev_device_unref(device);
    }
    udev_enumerate_unref(e);
    std::vector<std::string> vanished;
    for (const auto &[syspath, name] : known_)
        if (!present.count(syspath))
            vanished.push_back(syspath);
    for (const auto &syspath : vanished)
        gone(syspath);
}

}  // namespace vmlease
