// vmleasectl monitor: one line per signal of org.vmlease.Manager (and
// PropertiesChanged on /org/vmlease) until SIGINT or SIGTERM.
#include "bus.hpp"
#include "verbs.hpp"

#include <systemd/sd-event.h>

#include <csignal>
#include <iostream>
#include <map>

namespace vmleasectl {
namespace {

// Argument names of the signals, as in dbus/org.vmlease.Manager.xml.
const std::map<std::string, std::vector<const char *>> kSignalArgs = {
    {"LeaseAcquired", {"owner", "disk", "lease"}},
    {"LeaseReleased", {"owner", "disk", "lease"}},
    {"LeaseConflict", {"owner", "disk", "holder_host_id"}},
    {"LockFailure", {"owner", "lockspace", "action"}},
    {"MachineUnprotected", {"machine", "disk", "reason"}},
    {"MachineStale", {"machine", "disk", "holder_host_id"}},
    {"MachineResumed", {"machine", "reason"}},
    {"DeviceAdded", {"path"}},
    {"DeviceRemoved", {"path"}},
};

// A signal as a JSON object: {"signal": NAME, ARG: VALUE...}; unknown
// signals' arguments are named arg0, arg1, ...
Json describe_signal(const std::string &member, const Json &args) {
    Json o{{"signal", member}};
    if (member == "PropertiesChanged" && args.size() == 3) {
        o["interface"] = args[0];
        o["changed"] = Json::object();
        for (const auto &[k, v] : args[1].items())
            o["changed"][snake_case(k)] = v;
        o["invalidated"] = Json::array();
        for (const auto &k : args[2])
            o["invalidated"].push_back(snake_case(to_text(k)));
        return o;
    }
    auto it = kSignalArgs.find(member);
    for (size_t i = 0; i < args.size(); i++) {
        bool named = it != kSignalArgs.end() && i < it->second.size();
        o[named ? std::string(it->second[i]) : "arg" + std::to_string(i)] = args[i];
    }
    return o;
}

std::string properties_line(const std::string &member, const Json &args) {
    std::string line = member;
    for (const auto &[k, v] : args[1].items())
        line += " " + k + "=" + quote_if_needed(to_text(v));
    for (const auto &k : args[2])
        line += " " + to_text(k) + "=(invalidated)";
    return line;
}

std::string signal_line(const std::string &member, const Json &args) {
    if (member == "PropertiesChanged" && args.size() == 3)
        return properties_line(member, args);
    Json o = describe_signal(member, args);
    std::string line = member;
    for (const auto &[k, v] : o.items())
        if (k != "signal")
            line += " " + k + "=" + quote_if_needed(to_text(v));
    return line;
}

int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *) {
    const Output &out = *static_cast<const Output *>(userdata);
    const char *member = sd_bus_message_get_member(m);
    std::string name = member ? member : "";
    try {
        Json args = read_values(m);
        if (out.json != JsonMode::Off)
            print_json(out, describe_signal(name, args), true);
        else
            std::cout << signal_line(name, args) << "\n";
    } catch (const Failure &f) {
        std::cerr << "vmleasectl: cannot show signal " << name << ": " << f.message << std::endl;
    }
    std::cout.flush();
    return 0;
}

void add_matches(Context &c) {
    check(sd_bus_match_signal(c.bus, nullptr, kService, kManagerPath, kManagerInterface, nullptr, on_signal, &c.out),
          "cannot subscribe to vmleased's signals");
    check(sd_bus_match_signal(c.bus, nullptr, kService, kManagerPath, kPropertiesInterface, "PropertiesChanged",
                              on_signal, &c.out),
          "cannot subscribe to vmleased's property changes");
}

struct EventUnref {
    void operator()(sd_event *e) const { sd_event_unref(e); }
};

}  // namespace

int verb_monitor(Context &c, const Args &) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, nullptr);

    sd_event *raw = nullptr;
    check(sd_event_new(&raw), "cannot set up the event loop");
    std::unique_ptr<sd_event, EventUnref> event(raw);
    // No callback: the loop exits on the signal.
    check(sd_event_add_signal(event.get(), nullptr, SIGINT, nullptr, nullptr), "cannot handle SIGINT");
    check(sd_event_add_signal(event.get(), nullptr, SIGTERM, nullptr, nullptr), "cannot handle SIGTERM");
    add_matches(c);
    check(sd_bus_attach_event(c.bus, event.get(), SD_EVENT_PRIORITY_NORMAL), "cannot set up the event loop");
    check(sd_bus_set_exit_on_disconnect(c.bus, true), "cannot set up the event loop");

    // The loop's exit code: 0 after SIGINT/SIGTERM, EXIT_FAILURE when the bus went away.
    int r = sd_event_loop(event.get());
    check(r, "monitoring failed");
    sd_bus_detach_event(c.bus);
    if (r != 0)
        throw Failure{kExitFailure, "the connection to the bus was closed"};
    return kExitOk;
}

}  // namespace vmleasectl
