#include "lockfailure_listener.hpp"

#include "log.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace vmlease {

LockFailureListener::LockFailureListener(sd_event *event, const std::string &path, std::function<void(Reply)> handler)
    : path_(path), handler_(std::move(handler)) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path)
        throw std::runtime_error("socket path too long: " + path);
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0)
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    unlink(path.c_str());
    // Only root (sanlock runs the helper as root) may connect.
    mode_t old = umask(0077);
    int r = bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    umask(old);
    if (r < 0 || listen(listen_fd_, 16) < 0) {
        int e = errno;
        close(listen_fd_);
        throw std::runtime_error("cannot listen on " + path + ": " + std::strerror(e));
    }
    r = sd_event_add_io(event, &listen_source_, listen_fd_, EPOLLIN, on_accept, this);
    if (r < 0) {
        close(listen_fd_);
        throw std::runtime_error(std::string("cannot watch ") + path + ": " + std::strerror(-r));
    }
    // Above D-Bus: a lock failure is the most urgent thing the agent handles.
    sd_event_source_set_priority(listen_source_, SD_EVENT_PRIORITY_IMPORTANT);
}

LockFailureListener::~LockFailureListener() {
    while (!clients_.empty())
        drop(clients_.begin()->first);
    sd_event_source_disable_unref(listen_source_);
    if (listen_fd_ >= 0)
        close(listen_fd_);
    unlink(path_.c_str());
}

void LockFailureListener::drop(int fd) {
    auto it = clients_.find(fd);
    if (it != clients_.end()) {
        sd_event_source_disable_unref(it->second);
        clients_.erase(it);
    }
    serial_.erase(fd);
    close(fd);
}

int LockFailureListener::on_accept(sd_event_source *s, int, uint32_t, void *userdata) {
    auto *self = static_cast<LockFailureListener *>(userdata);
    int fd = accept4(self->listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return 0;
    if (self->clients_.size() >= kMaxHelperConnections) {
        close(fd);
        return 0;
    }
    sd_event_source *client = nullptr;
    if (sd_event_add_io(sd_event_source_get_event(s), &client, fd, EPOLLIN, on_client, self) < 0) {
        close(fd);
        return 0;
    }
    sd_event_source_set_priority(client, SD_EVENT_PRIORITY_IMPORTANT);
    self->clients_[fd] = client;
    self->serial_[fd] = ++self->next_serial_;
    return 0;
}

int LockFailureListener::on_client(sd_event_source *, int fd, uint32_t, void *userdata) {
    auto *self = static_cast<LockFailureListener *>(userdata);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n > 0 && std::string(buf, static_cast<size_t>(n)).rfind("lockfailure", 0) == 0) {
        // Wait for the reply, not for more input; a hang-up still ends it.
        sd_event_source_set_io_events(self->clients_[fd], EPOLLRDHUP);
        std::weak_ptr<bool> alive = self->alive_;
        uint64_t serial = self->serial_[fd];
        Reply reply = [self, alive, fd, serial](bool handled) {
            if (alive.expired() || !self->serial_.count(fd) || self->serial_[fd] != serial)
                return;
            // Anything but "ok" makes the helper act on its own.
            (void)!send(fd, handled ? "ok\n" : "no\n", 3, MSG_NOSIGNAL);
            self->drop(fd);
        };
        try {
            self->handler_(reply);
        } catch (const std::exception &e) {
            log_error(std::string("handling the lock-failure helper's report failed: ") + e.what());
            reply(false);
        }
        return 0;
    }
    self->drop(fd);
    return 0;
}

}  // namespace vmlease
