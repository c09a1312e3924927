// Where udev events enter: a libudev monitor on block devices that carry the
// "vmlease" tag (udev/70-vmlease.rules), attached to sd-event. The devices
// that exist at start-up, and all of them again after the kernel dropped
// events (ENOBUFS), are replayed through the same path as live events, so a
// consumer only ever sees "this name appeared" / "this name went away".
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

struct udev;
struct udev_device;
struct udev_monitor;

namespace vmlease {

inline constexpr const char *kUdevTag = "vmlease";
// Bound on devices remembered (syspath -> name); more are ignored and logged.
inline constexpr size_t kMaxTrackedDevices = 65536;
// Events taken from the socket per loop iteration, so that a storm of them
// never keeps D-Bus calls waiting for more than one batch.
inline constexpr unsigned kUdevBatch = 64;
// What udevd asks for its own monitor: enough for a burst of thousands.
inline constexpr int kUdevReceiveBuffer = 128 * 1024 * 1024;

struct DeviceEvent {
    enum class Kind { Added, Removed };
    Kind kind;
    std::string name;      // for the signals: its by-path link, else the device node
    std::string identity;  // its identity (udev_disk_namer.hpp), "" if it has none
    struct Names {
        std::string name, identity;
    };
};

class UdevMonitor {
public:
    using Handler = std::function<void(const DeviceEvent &)>;
    // Throws std::runtime_error if no monitor can be created.
    UdevMonitor(sd_event *event, Handler handler);
    ~UdevMonitor();
    UdevMonitor(const UdevMonitor &) = delete;
    UdevMonitor &operator=(const UdevMonitor &) = delete;

    // Subscribes, then enumerates: the handler sees every present device as
    // Added before start() returns. Throws std::runtime_error on failure.
    void start();
    size_t device_count() const { return known_.size(); }
    uint64_t events_received() const { return received_; }
    uint64_t resyncs() const { return resyncs_; }

private:
    static int on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    void receive_batch();
    void enumerate();
    void seen(udev_device *device);
    void gone(const std::string &syspath);

    sd_event *event_;
    Handler handler_;
    udev *udev_ = nullptr;
    udev_monitor *monitor_ = nullptr;
    sd_event_source *source_ = nullptr;
    std::map<std::string, DeviceEvent::Names> known_;  // by syspath
    bool warned_full_ = false;
    uint64_t received_ = 0;
    uint64_t resyncs_ = 0;
};

}  // namespace vmlease
