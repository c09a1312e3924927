// Work finished on a worker thread comes back to the event loop through
// here: post() from any thread, drain() on the loop when fd() is readable.
#pragma once

#include <functional>
#include <memory>

namespace vmlease {

class CompletionQueue {
public:
    CompletionQueue();
    ~CompletionQueue();
    CompletionQueue(const CompletionQueue &) = delete;
    CompletionQueue &operator=(const CompletionQueue &) = delete;

    int fd() const;
    // Safe from any thread, even after the queue is gone (a worker still
    // finishing a blocking sanlock call at shutdown): the closure is dropped.
    void post(std::function<void()> fn);
    using Poster = std::function<void(std::function<void()>)>;
    Poster poster() const;
    // Run every posted closure, in order. Loop thread only.
    void drain();

private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace vmlease
