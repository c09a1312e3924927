#include "worker.hpp"

#include <csignal>
#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <mutex>

namespace vmlease {

struct Worker::State {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::function<void()>> jobs;
    bool stopping = false;
    bool busy = false;
    std::atomic<size_t> backlog{0};
};

Worker::Worker() : state_(std::make_shared<State>()) {
    thread_ = std::thread([s = state_] {
        // Signals are for the event loop (signalfd); a worker taking SIGTERM
        // with its default action would kill the daemon.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(s->mutex);
                s->cv.wait(lock, [&] { return s->stopping || !s->jobs.empty(); });
                if (s->stopping)
                    return;
                job = std::move(s->jobs.front());
                s->jobs.pop_front();
                s->busy = true;
            }
            job();
            job = nullptr;
            std::lock_guard lock(s->mutex);
            s->busy = false;
            s->backlog--;
        }
    });
}

Worker::~Worker() {
    bool busy;
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
        state_->jobs.clear();
        busy = state_->busy;
    }
    state_->cv.notify_all();
    if (busy)
        thread_.detach();
    else
        thread_.join();
}

void Worker::submit(std::function<void()> job) {
    {
        std::lock_guard lock(state_->mutex);
        state_->jobs.push_back(std::move(job));
        state_->backlog++;
    }
    state_->cv.notify_one();
}

size_t Worker::backlog() const { return state_->backlog.load(); }

}  // namespace vmlease
