// A thread that runs blocking jobs (sanlock calls) one at a time, in order.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

namespace vmlease {

class Worker {
public:
    Worker();
    // Stops taking jobs. A job still blocked in sanlock (a lockspace join
    // can take tens of seconds) is not waited for: the thread is detached and
    // finishes on its own; everything it touches is owned by the job itself.
    ~Worker();
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    void submit(std::function<void()> job);
    // Jobs queued or running; for spreading work over several workers.
    size_t backlog() const;

private:
    struct State;
    std::shared_ptr<State> state_;
    std::thread thread_;
};

}  // namespace vmlease
