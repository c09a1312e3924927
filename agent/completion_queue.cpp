#include "completion_queue.hpp"

#include "log.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <cstring>

namespace vmlease {

struct CompletionQueue::State {
    std::mutex mutex;
    std::deque<std::function<void()>> items;
    int fd = -1;
    bool closed = false;

    void post(std::function<void()> fn) {
        std::lock_guard lock(mutex);
        if (closed)
            return;
        items.push_back(std::move(fn));
        uint64_t one = 1;
        (void)!write(fd, &one, sizeof one);
    }
};

CompletionQueue::CompletionQueue() : state_(std::make_shared<State>()) {
    state_->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (state_->fd < 0)
        throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

CompletionQueue::~CompletionQueue() {
    std::lock_guard lock(state_->mutex);
    state_->closed = true;
    state_->items.clear();
    close(state_->fd);
    state_->fd = -1;
}

int CompletionQueue::fd() const { return state_->fd; }

void CompletionQueue::post(std::function<void()> fn) { state_->post(std::move(fn)); }

CompletionQueue::Poster CompletionQueue::poster() const {
    std::shared_ptr<State> s = state_;
    return [s](std::function<void()> fn) { s->post(std::move(fn)); };
}

void CompletionQueue::drain() {
    uint64_t n;
    (void)!read(state_->fd, &n, sizeof n);
    for (;;) {
        std::function<void()> fn;
        {
            std::lock_guard lock(state_->mutex);
            if (state_->items.empty())
                return;
            fn = std::move(state_->items.front());
            state_->items.pop_front();
        }
        // One failing completion must not strand the ones behind it (the
        // eventfd counter was already read).
        try {
            fn();
        } catch (const std::exception &e) {
            log_error(std::string("completing an operation failed: ") + e.what());
        }
    }
}

}  // namespace vmlease
