// What the D-Bus layer's files (manager_*.cpp) share: ApiError as a D-Bus
// error, the checks every handler makes, and the two wrappers that keep an
// exception from crossing into sdbus-c++ (which terminates on any but its own).
#pragma once

#include "core/api_error.hpp"
#include "core/owner_name.hpp"
#include "log.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <map>
#include <string>

namespace vmlease::manager_internal {

inline sdbus::Error to_dbus(const ApiError &e) { return sdbus::Error(error_name(e.kind), e.message); }

inline sdbus::Error invalid_args(const std::string &message) { return to_dbus({ErrorKind::InvalidArgs, message}); }

inline void reject_options(const std::map<std::string, sdbus::Variant> &options, const char *method) {
    if (!options.empty())
        throw invalid_args("unknown option " + quoted(options.begin()->first) + ": " + method + " takes no options");
}

inline void check_owner(const std::string &owner) {
    std::string problem = check_owner_name(owner);
    if (!problem.empty())
        throw invalid_args("owner: " + problem);
}

// Emitting a signal can fail (a full send queue, a closed connection); that
// must not keep the remaining signals and replies of a Step from going out.
template <typename Emit>
void emit_safely(const char *what, Emit emit) {
    try {
        emit();
    } catch (const std::exception &e) {
        log_warning(std::string("cannot emit ") + what + ": " + e.what());
    }
}

// Run a handler body; anything it throws becomes an error reply. sdbus-c++
// 1.2.0 terminates the process on any exception that is not sdbus::Error.
template <typename Result, typename Body>
void guarded(Result &result, const char *method, Body body) {
    try {
        body();
    } catch (const sdbus::Error &e) {
        result.returnError(e);
    } catch (const std::exception &e) {
        log_error(std::string(method) + " failed: " + e.what());
        result.returnError(sdbus::Error(error_name(ErrorKind::Failed), std::string(method) + " failed: " + e.what()));
    }
}

}  // namespace vmlease::manager_internal
