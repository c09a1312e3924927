// Callbacks from C (sd-event, sd-bus, the completion queue) into code that
// may throw: an exception must not unwind through C, and one failed event
// must not stop the loop. The failure is logged here, once; `what` says what
// was being done ("scanning machines"). Returns whether `fn` completed.
#pragma once

#include "log.hpp"

#include <exception>
#include <string>

namespace vmlease {

template <typename Fn>
bool run_guarded(const char *what, Fn &&fn) noexcept {
    try {
        fn();
        return true;
    } catch (const std::exception &e) {
        log_error(std::string(what) + " failed: " + e.what());
        return false;
    }
}

}  // namespace vmlease
