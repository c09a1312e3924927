// Attaches an sdbus-c++ 1.2.0 connection to sd-event, which sdbus-c++ cannot
// do itself: the bus fd is watched with the events sd-bus asks for, and a
// timer follows sd-bus's absolute timeout; both are refreshed in a prepare
// callback before every poll, and any wake-up processes every pending message.
#pragma once

#include <sdbus-c++/IConnection.h>
#include <systemd/sd-event.h>

namespace vmlease {

class BusEventSource {
public:
    BusEventSource(sd_event *event, sdbus::IConnection &connection);
    ~BusEventSource();
    BusEventSource(const BusEventSource &) = delete;
    BusEventSource &operator=(const BusEventSource &) = delete;

private:
    static int on_prepare(sd_event_source *s, void *userdata);
    static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
    void process();

    sdbus::IConnection &connection_;
    sd_event_source *io_ = nullptr;
    sd_event_source *timer_ = nullptr;
};

}  // namespace vmlease
