#include "bus.hpp"

#include <cstring>
#include <map>

namespace vmleasectl {
namespace {

Json read_value(sd_bus_message *m);

Json read_basic(sd_bus_message *m, char type) {
    union {
        uint8_t y;
        int b;
        int16_t n;
        uint16_t q;
        int32_t i;
        uint32_t u;
        int64_t x;
        uint64_t t;
        double d;
        const char *s;
    } v{};
    check(sd_bus_message_read_basic(m, type, &v), "cannot parse vmleased's reply");
    switch (type) {
    case 'y': return v.y;
    case 'b': return v.b != 0;
    case 'n': return v.n;
    case 'q': return v.q;
    case 'i': case 'h': return v.i;
    case 'u': return v.u;
    case 'x': return v.x;
    case 't': return v.t;
    case 'd': return v.d;
    default: return std::string(v.s);  // s, o, g
    }
}

// Reads values until the end of the container we are in.
template <typename Add>
void read_until_end(sd_bus_message *m, Add add) {
    int r;
    while ((r = sd_bus_message_at_end(m, false)) == 0)
        add(m);
    check(r, "cannot parse vmleased's reply");
}

Json read_container(sd_bus_message *m, char type, const char *contents) {
    check(sd_bus_message_enter_container(m, type, contents), "cannot parse vmleased's reply");
    Json out;
    if (type == 'v') {
        out = read_value(m);
    } else if (type == 'a' && contents[0] == '{') {
        out = Json::object();
        read_until_end(m, [&](sd_bus_message *msg) {
            Json entry = read_value(msg);  // a dict entry reads as [key, value]
            out[entry[0].is_string() ? entry[0].get<std::string>() : entry[0].dump()] = entry[1];
        });
    } else {
        out = Json::array();
        read_until_end(m, [&](sd_bus_message *msg) { out.push_back(read_value(msg)); });
    }
    check(sd_bus_message_exit_container(m), "cannot parse vmleased's reply");
    return out;
}

Json read_value(sd_bus_message *m) {
    char type;
    const char *contents = nullptr;
    int r = sd_bus_message_peek_type(m, &type, &contents);
    check(r, "cannot parse vmleased's reply");
    if (r == 0)
        throw Failure{kExitFailure, "vmleased's reply ended early"};
    if (type == 'a' || type == 'r' || type == 'e' || type == 'v')
        return read_container(m, type, contents);
    return read_basic(m, type);
}

// Hints for errors an operator can do something about.
struct ErrorAdvice {
    int exit_code;
    const char *advice;  // nullptr: the daemon's message is advice enough
    bool with_message;   // append the daemon's message
};

const std::map<std::string, ErrorAdvice> kAdvice = {
    {"org.vmlease.Error.NoSuchLease", {kExitNoSuchObject, nullptr, true}},
    {"org.vmlease.Error.NoSuchOwner", {kExitNoSuchObject, nullptr, true}},
    {"org.freedesktop.DBus.Error.UnknownObject", {kExitNoSuchObject, nullptr, true}},
    {"org.vmlease.Error.LockspaceUnavailable", {kExitFailure, "lockspace not joined yet; see `vmleasectl status`", false}},
    {"org.freedesktop.DBus.Error.AccessDenied",
     {kExitFailure, "not authorized; run as root or allow org.vmlease.* in polkit", false}},
    {"org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
     {kExitFailure,
      "not authorized without authentication; run as root, or on a terminal without --no-ask-password", false}},
    {"org.freedesktop.DBus.Error.ServiceUnknown",
     {kExitFailure, "vmleased is not on the bus; is vmlease.service running? systemctl start vmlease", false}},
    {"org.freedesktop.DBus.Error.NameHasNoOwner",
     {kExitFailure, "vmleased is not on the bus; is vmlease.service running? systemctl start vmlease", false}},
    {"org.freedesktop.DBus.Error.NoReply",
     {kExitFailure, "vmleased did not answer in time; see `journalctl -u vmlease`", false}},
    {"org.freedesktop.DBus.Error.Timeout",
     {kExitFailure, "vmleased did not answer in time; see `journalctl -u vmlease`", false}},
    {"org.freedesktop.DBus.Error.NotSupported", {kExitFailure, "not supported by this vmleased", true}},
    {"org.freedesktop.DBus.Error.UnknownMethod",
     {kExitFailure, "vmleased does not know this call; is it older than vmleasectl?", true}},
};

}  // namespace

void check(int r, const std::string &what) {
    if (r < 0)
        throw Failure{kExitFailure, what + ": " + strerror(-r)};
}

BusPtr connect_bus(const Options &options) {
    sd_bus *bus = nullptr;
    int r = options.host.empty() ? sd_bus_open_system(&bus) : sd_bus_open_system_remote(&bus, options.host.c_str());
    BusPtr owned(bus);
    check(r, options.host.empty() ? std::string("cannot connect to the system bus")
                                  : "cannot connect to the system bus of " + options.host);
    check(sd_bus_set_allow_interactive_authorization(bus, options.ask_password),
          "cannot set up the bus connection");
    return owned;
}

Json read_values(sd_bus_message *m) {
    Json out = Json::array();
    int r;
    while ((r = sd_bus_message_at_end(m, true)) == 0)
        out.push_back(read_value(m));
    check(r, "cannot parse vmleased's reply");
    return out;
}

Failure failure_from_error(const sd_bus_error *error, const std::string &what) {
    std::string name = error->name ? error->name : "";
    std::string message = error->message && *error->message ? error->message : name;
    auto it = kAdvice.find(name);
    if (it == kAdvice.end())
        return {kExitFailure, what + ": " + message};
    const ErrorAdvice &a = it->second;
    if (!a.advice)
        return {a.exit_code, what + ": " + message};
    return {a.exit_code, what + ": " + a.advice + (a.with_message ? " (" + message + ")" : "")};
}

Json call_method(sd_bus *bus, const MethodCall &call) {
    sd_bus_message *raw = nullptr;
    check(sd_bus_message_new_method_call(bus, &raw, kService, call.path.c_str(), call.interface, call.member), call.what);
    MessagePtr m(raw);
    if (call.append)
        call.append(m.get());
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply_raw = nullptr;
    int r = sd_bus_call(bus, m.get(), call.timeout, &error, &reply_raw);
    MessagePtr reply(reply_raw);
    if (r < 0) {
        Failure f = sd_bus_error_is_set(&error) ? failure_from_error(&error, call.what)
                                                : Failure{kExitFailure, call.what + ": " + strerror(-r)};
        sd_bus_error_free(&error);
        throw f;
    }
    const char *signature = sd_bus_message_get_signature(reply.get(), true);
    if (strcmp(signature ? signature : "", call.reply_signature) != 0)
        throw Failure{kExitFailure, call.what + ": vmleased answered " + call.member + " with (" +
                                        (signature ? signature : "") + "), expected (" + call.reply_signature +
                                        "); do vmleased and vmleasectl come from the same version?"};
    return read_values(reply.get());
}

}  // namespace vmleasectl
