#include "bus_event_source.hpp"

#include "log.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace vmlease {

BusEventSource::BusEventSource(sd_event *event, sdbus::IConnection &connection) : connection_(connection) {
    auto poll = connection_.getEventLoopPollData();
    int r = sd_event_add_io(event, &io_, poll.fd, poll.events, on_io, this);
    if (r < 0)
        throw std::runtime_error(std::string("cannot watch the bus fd: ") + strerror(-r));
    r = sd_event_source_set_prepare(io_, on_prepare);
    if (r >= 0)
        r = sd_event_add_time(event, &timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, this);
    if (r >= 0)
        r = sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    if (r < 0)
        throw std::runtime_error(std::string("cannot set up bus timer: ") + strerror(-r));
}

BusEventSource::~BusEventSource() {
    sd_event_source_disable_unref(io_);
    sd_event_source_disable_unref(timer_);
}

int BusEventSource::on_prepare(sd_event_source *, void *userdata) {
    auto *self = static_cast<BusEventSource *>(userdata);
    auto poll = self->connection_.getEventLoopPollData();
    sd_event_source_set_io_events(self->io_, poll.events);
    if (poll.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(self->timer_, SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(self->timer_, poll.timeout_usec);
        sd_event_source_set_enabled(self->timer_, SD_EVENT_ONESHOT);
    }
    return 0;
}

int BusEventSource::on_io(sd_event_source *, int, uint32_t, void *userdata) {
    static_cast<BusEventSource *>(userdata)->process();
    return 0;
}

int BusEventSource::on_timer(sd_event_source *, uint64_t, void *userdata) {
    static_cast<BusEventSource *>(userdata)->process();
    return 0;
}

void BusEventSource::process() {
    try {
        while (connection_.processPendingRequest()) {
        }
    } catch (const std::exception &e) {
        // A broken bus connection: nothing on it can be served any more.
        log_error(std::string("D-Bus connection failed: ") + e.what());
        sd_event_exit(sd_event_source_get_event(io_), 1);
    }
}

}  // namespace vmlease
