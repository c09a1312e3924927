// Where vmlease-lockfailure's reports enter: a Unix socket in the runtime
// directory. sanlock runs the helper when this host cannot renew its
// lockspace; the helper connects, says "lockfailure", and waits a short
// while for "ok" before it acts on its own (lockfailure_plan.hpp).
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <map>
#include <string>

namespace vmlease {

inline constexpr size_t kMaxHelperConnections = 16;

class LockFailureListener {
public:
    // `handler` runs on the loop for each report; "ok" is answered if it says
    // it handled it, "no" (the helper then acts itself) if not.
    LockFailureListener(sd_event *event, const std::string &path, std::function<bool()> handler);
    ~LockFailureListener();
    LockFailureListener(const LockFailureListener &) = delete;
    LockFailureListener &operator=(const LockFailureListener &) = delete;

private:
    static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    void drop(int fd);

    std::string path_;
    std::function<bool()> handler_;
    int listen_fd_ = -1;
    sd_event_source *listen_source_ = nullptr;
    std::map<int, sd_event_source *> clients_;
};

}  // namespace vmlease
