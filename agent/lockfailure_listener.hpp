// Where vmlease-lockfailure's reports enter: a Unix socket in the runtime
// directory. sanlock runs the helper when this host cannot renew its
// lockspace; the helper connects, says "lockfailure", and waits a short
// while for "ok" before it acts on its own (lockfailure_plan.hpp).
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace vmlease {

inline constexpr size_t kMaxHelperConnections = 16;

class LockFailureListener {
public:
    // `handler` runs on the loop for each report and calls `reply`, at once
    // or later: "ok" if the failure was handled, "no" (the helper then acts
    // itself) if not. A reply after the helper hung up goes nowhere.
    using Reply = std::function<void(bool handled)>;
    LockFailureListener(sd_event *event, const std::string &path, std::function<void(Reply)> handler);
    ~LockFailureListener();
    LockFailureListener(const LockFailureListener &) = delete;
    LockFailureListener &operator=(const LockFailureListener &) = delete;

private:
    static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata);
    void drop(int fd);

    std::string path_;
    std::function<void(Reply)> handler_;
    // Each connection's number, so a late reply never reaches a reused fd.
    std::map<int, uint64_t> serial_;
    uint64_t next_serial_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    int listen_fd_ = -1;
    sd_event_source *listen_source_ = nullptr;
    std::map<int, sd_event_source *> clients_;
};

}  // namespace vmlease
