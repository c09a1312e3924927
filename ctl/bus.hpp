// vmleasectl: talking to vmleased over D-Bus (connection, calls, errors,
// replies read into JSON).
#pragma once

#include "cli.hpp"
#include "vmlease_names.hpp"

#include <systemd/sd-bus.h>

#include <functional>
#include <memory>
#include <string>

namespace vmleasectl {

inline constexpr const char *kService = vmlease::names::kBusName;
using vmlease::names::kManagerInterface;
using vmlease::names::kManagerPath;
inline constexpr const char *kPropertiesInterface = "org.freedesktop.DBus.Properties";

// Reads may use sd-bus's default (25 s); taking a lease can wait for sanlock
// (a dead holder's lease frees only after its host is declared dead) and for
// the user to authenticate.
inline constexpr uint64_t kDefaultTimeout = 0;
inline constexpr uint64_t kLongTimeout = 300ull * 1000 * 1000;

struct BusUnref {
    void operator()(sd_bus *b) const { sd_bus_flush_close_unref(b); }
};
struct MessageUnref {
    void operator()(sd_bus_message *m) const { sd_bus_message_unref(m); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;

// Throws Failure{kExitFailure, what: strerror} when r < 0.
void check(int r, const std::string &what);

// The system bus, or the one of -H HOST; with interactive authorization unless --no-ask-password.
BusPtr connect_bus(const Options &options);

struct MethodCall {
    const char *interface = kManagerInterface;
    const char *member;
    const char *reply_signature;              // checked before the reply is read
    std::string what;                         // "cannot acquire /x for vm1", for error messages
    std::function<void(sd_bus_message *)> append = nullptr;  // the arguments
    uint64_t timeout = kDefaultTimeout;
    std::string path = kManagerPath;  // the object called
};

// Calls a method on /org/vmlease; returns the reply's values as a JSON array
// (structs as arrays, dicts as objects, variants unwrapped). Throws Failure.
Json call_method(sd_bus *bus, const MethodCall &call);

// Every value left in a message, as a JSON array.
Json read_values(sd_bus_message *m);

// The Failure (exit code and message that says what to do) for a D-Bus error.
Failure failure_from_error(const sd_bus_error *error, const std::string &what);

}  // namespace vmleasectl
