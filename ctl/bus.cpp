#include "bus.hpp"

#include <cstring>
#include <ctime>
#include <map>
#include <optional>

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

// --- D-Bus activation, watched ----------------------------------------------
// A call to an org.vmlease without an owner makes the bus ask systemd to start
// vmlease.service. When that start fails (vmleased exits on a configuration
// error), systemd 252 does not tell dbus-daemon (systemd issue #28877): the
// caller waits for the bus's activation timeout (25 s) to learn nothing, and
// every call in those 25 s joins the same dead activation. So the first call
// is preceded by the same activation, watched through systemd's job signals:
// - the start job fails (JobRemoved, result not "done"): said at once;
// - no start job and the unit not starting within 1 s: the bus is still
//   waiting on an earlier start that failed: said too, with what to do;
// the reason in both cases from what systemd keeps (vmleased's status text
// names the configuration file and line). Without systemd on the bus, the
// call activates vmleased by itself, as it always did.

constexpr const char *kUnit = "vmlease.service";
constexpr const char *kSystemd = "org.freedesktop.systemd1";
constexpr const char *kSystemdPath = "/org/freedesktop/systemd1";
constexpr const char *kSystemdManager = "org.freedesktop.systemd1.Manager";
constexpr const char *kBusDriver = "org.freedesktop.DBus";
constexpr uint64_t kNoJobUsec = 1000000;

struct Activation {
    std::string systemd;  // systemd's unique name: signals from anyone else are ignored
    bool done = false;
    bool job_seen = false;
    std::string failed_result;               // JobRemoved's result, when not "done"
    sd_bus_error error = SD_BUS_ERROR_NULL;  // StartServiceByName's error
};

// Any client may send a signal, even to us alone: only systemd's count.
bool from_systemd(sd_bus_message *m, const Activation &a) {
    const char *sender = sd_bus_message_get_sender(m);
    return sender && a.systemd == sender;
}

int on_job_new(sd_bus_message *m, void *userdata, sd_bus_error *) {
    auto *a = static_cast<Activation *>(userdata);
    uint32_t id = 0;
    const char *job = nullptr, *unit = nullptr;
    if (from_systemd(m, *a) && sd_bus_message_read(m, "uos", &id, &job, &unit) >= 0 && strcmp(unit, kUnit) == 0)
        a->job_seen = true;
    return 0;
}

bool unit_starting(sd_bus *bus);

int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *) {
    auto *a = static_cast<Activation *>(userdata);
    if (!from_systemd(m, *a))
        return 0;
    uint32_t id = 0;
    const char *job = nullptr, *unit = nullptr, *result = nullptr;
    if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) >= 0 && strcmp(unit, kUnit) == 0) {
        a->job_seen = true;
        // A job of the unit that ended badly is its start's failure only if
        // nothing else is starting it (a canceled stop job is not).
        if (strcmp(result, "done") != 0 && !unit_starting(sd_bus_message_get_bus(m))) {
            a->failed_result = result;
            a->done = true;
        }
    }
    return 0;
}

int on_started(sd_bus_message *m, void *userdata, sd_bus_error *) {
    auto *a = static_cast<Activation *>(userdata);
    if (sd_bus_message_is_method_error(m, nullptr))
        sd_bus_error_copy(&a->error, sd_bus_message_get_error(m));
    a->done = true;
    return 0;
}

std::string unit_path() {
    char *path = nullptr;
    if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", kUnit, &path) < 0)
        return "";
    std::string out = path;
    free(path);
    return out;
}

// The id of the job the unit has queued or running, 0 for none.
uint32_t unit_job(sd_bus *bus) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = nullptr;
    uint32_t id = 0;
    const char *job = nullptr;
    if (sd_bus_get_property(bus, kSystemd, unit_path().c_str(), "org.freedesktop.systemd1.Unit", "Job", &error,
                            &reply, "(uo)") >= 0)
        sd_bus_message_read(reply, "(uo)", &id, &job);
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    return id;
}

std::string unit_property(sd_bus *bus, const char *interface, const char *name) {
    char *value = nullptr;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_get_property_string(bus, kSystemd, unit_path().c_str(), interface, name, &error, &value);
    sd_bus_error_free(&error);
    std::string out = r >= 0 && value ? value : "";
    free(value);
    return out;
}

// "vmleased could not be started (vmlease.service failed): <its status text>".
Failure start_failure(sd_bus *bus, const std::string &how, const std::string &then) {
    std::string status = unit_property(bus, "org.freedesktop.systemd1.Service", "StatusText");
    return {kExitFailure, "vmleased could not be started (" + std::string(kUnit) + " " + how + ")" +
                              (status.empty() ? "" : ": " + status) + "; " + then};
}

uint64_t monotonic_usec() {
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// The unit is being started or runs (its start may still end well).
bool unit_starting(sd_bus *bus) {
    std::string state = unit_property(bus, "org.freedesktop.systemd1.Unit", "ActiveState");
    return unit_job(bus) != 0 || state == "activating" || state == "active" || state == "reloading";
}

bool name_has_owner(sd_bus *bus, bool &has_owner) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = nullptr;
    int owner = 0;
    int r = sd_bus_call_method(bus, kBusDriver, "/org/freedesktop/DBus", kBusDriver, "NameHasOwner", &error, &reply,
                               "s", kService);
    if (r >= 0)
        r = sd_bus_message_read(reply, "b", &owner);
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    has_owner = owner;
    return r >= 0;
}

void activate_watched(sd_bus *bus) {
    bool has_owner = false;
    if (!name_has_owner(bus, has_owner) || has_owner)
        return;
    Activation a;
    sd_bus_slot *new_slot = nullptr, *removed_slot = nullptr, *start_slot = nullptr;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *owner = nullptr;
    const char *unique = nullptr;
    int r = sd_bus_call_method(bus, kBusDriver, "/org/freedesktop/DBus", kBusDriver, "GetNameOwner", &error, &owner,
                               "s", kSystemd);
    if (r >= 0)
        r = sd_bus_message_read(owner, "s", &unique);
    if (r >= 0)
        a.systemd = unique;
    sd_bus_message_unref(owner);
    sd_bus_error_free(&error);
    if (r >= 0)
        r = sd_bus_match_signal(bus, &new_slot, a.systemd.c_str(), kSystemdPath, kSystemdManager, "JobNew",
                                on_job_new, &a);
    if (r >= 0)
        r = sd_bus_match_signal(bus, &removed_slot, a.systemd.c_str(), kSystemdPath, kSystemdManager, "JobRemoved",
                                on_job_removed, &a);
    if (r >= 0)
        r = sd_bus_call_method(bus, kSystemd, kSystemdPath, kSystemdManager, "Subscribe", &error, nullptr, "");
    sd_bus_error_free(&error);
    if (r >= 0)
        r = sd_bus_call_method_async(bus, &start_slot, kBusDriver, "/org/freedesktop/DBus", kBusDriver,
                                     "StartServiceByName", on_started, &a, "su", kService, 0u);
    uint64_t now = monotonic_usec();
    const uint64_t no_job_by = now + kNoJobUsec;
    bool stale = false;
    while (r >= 0 && !a.done) {
        r = sd_bus_process(bus, nullptr);
        if (r != 0)
            continue;
        now = monotonic_usec();
        if (!a.job_seen && now >= no_job_by) {
            // The bus asked systemd nothing: it still waits on an earlier
            // start, unless the unit is starting anyway (a queued start job
            // our request joined, waiting for the units it comes after).
            if (!unit_starting(bus)) {
                stale = true;
                break;
            }
            a.job_seen = true;
        }
        r = sd_bus_wait(bus, a.job_seen ? UINT64_MAX : no_job_by - now);
    }
    sd_bus_slot_unref(new_slot);
    sd_bus_slot_unref(removed_slot);
    sd_bus_slot_unref(start_slot);
    const char *name = a.error.name ? a.error.name : "";
    std::optional<Failure> failure;
    if (stale)
        failure = start_failure(bus, "is " + unit_property(bus, "org.freedesktop.systemd1.Unit", "ActiveState"),
                                "the bus is still waiting on that start (for up to 25 s); once the cause is fixed, "
                                "`systemctl start vmlease`");
    else if (!a.failed_result.empty())
        failure = start_failure(bus, "start job " + a.failed_result,
                                "see `systemctl status vmlease` and `journalctl -u vmlease`, and once the cause is "
                                "fixed, `systemctl start vmlease`");
    // An activation that failed or timed out is not asked for again by the
    // call; any other answer (not activatable here, ...) is the call's to give.
    else if (strncmp(name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0 ||
             strcmp(name, "org.freedesktop.DBus.Error.TimedOut") == 0 ||
             strcmp(name, "org.freedesktop.DBus.Error.NoReply") == 0)
        failure = failure_from_error(&a.error, "cannot start vmleased");
    sd_bus_error_free(&a.error);
    if (failure)
        throw *failure;
}

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
    static sd_bus *activated = nullptr;
    if (activated != bus) {
        activated = bus;
        activate_watched(bus);
    }
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
