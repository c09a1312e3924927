// call-as: one org.vmlease.Manager call, made with plain sd-bus so the test
// controls what sdbus-c++ 1.2.0 cannot: the ALLOW_INTERACTIVE_AUTHORIZATION
// flag (--no-interactive clears it) and many calls in flight from one sender.
// Tests run it as another user through as_user() (tests/harness/harness.hpp).
// Prints "OK" or "ERROR <error name>: <message>" per call and exits 0 once
// the calls were made; exit 2 for usage or connection problems. --repeat N
// sends the call N times at once on one connection (one sender).
//
//   call-as [--no-interactive] [--repeat N] METHOD ARG...
#include <systemd/sd-bus.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int usage() {
    fprintf(stderr, "usage: call-as [--no-interactive] [--repeat N] METHOD ARG...\n");
    return 2;
}

int append(sd_bus_message *m, const std::string &method, const std::vector<std::string> &a) {
    auto need = [&](size_t n) { return a.size() == n ? 0 : -EINVAL; };
    if (method == "AcquireDisk") {
        if (need(3))
            return -EINVAL;
        int r = sd_bus_message_append(m, "sss", a[0].c_str(), a[1].c_str(), a[2].c_str());
        return r < 0 ? r : sd_bus_message_append(m, "a{sv}", 0);
    }
    if (method == "ReleaseDisk")
        return need(2) ?: sd_bus_message_append(m, "ss", a[0].c_str(), a[1].c_str());
    if (method == "RegisterMachine")
        return need(1) ?: sd_bus_message_append(m, "sa(ss)a{sv}", a[0].c_str(), 0, 0);
    if (method == "ReleaseMachine")
        return need(1) ?: sd_bus_message_append(m, "s", a[0].c_str());
    if (method == "InspectDisk" || method == "IdentifyDisk")
        return need(1) ?: sd_bus_message_append(m, "s", a[0].c_str());
    if (method == "CleanupLeases")
        return need(0) ?: sd_bus_message_append(m, "b", 1);
    if (method == "ListLeases" || method == "ListMachines" || method == "Reload")
        return need(0);
    return -EINVAL;
}

}  // namespace

int main(int argc, char **argv) {
    int repeat = 1;
    bool interactive = true;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-interactive") == 0)
            interactive = false;
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    std::string method = argv[i++];
    std::vector<std::string> args(argv + i, argv + argc);

    sd_bus *bus = nullptr;
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        fprintf(stderr, "cannot connect to the system bus: %s\n", strerror(-r));
        return 2;
    }
    bool property = method == "Get";
    int outstanding = 0;
    for (int n = 0; n < repeat; n++) {
        sd_bus_message *m = nullptr;
        r = sd_bus_message_new_method_call(bus, &m, "org.vmlease", "/org/vmlease",
                                           property ? "org.freedesktop.DBus.Properties" : "org.vmlease.Manager",
                                           method.c_str());
        if (r >= 0)
            r = property ? (args.size() == 1 ? sd_bus_message_append(m, "ss", "org.vmlease.Manager", args[0].c_str())
                                             : -EINVAL)
                         : append(m, method, args);
        if (r < 0)
            return usage();
        sd_bus_message_set_allow_interactive_authorization(m, interactive);
        r = sd_bus_call_async(
            bus, nullptr, m,
            [](sd_bus_message *reply, void *userdata, sd_bus_error *) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                if (e)
                    printf("ERROR %s: %s\n", e->name, e->message ? e->message : "");
                else
                    printf("OK\n");
                fflush(stdout);  // the test reads replies while others are still pending
                (*static_cast<int *>(userdata))--;
                return 0;
            },
            &outstanding, 60 * 1000000ULL);
        sd_bus_message_unref(m);
        if (r < 0) {
            fprintf(stderr, "cannot send: %s\n", strerror(-r));
            return 2;
        }
        outstanding++;
    }
    while (outstanding > 0) {
        r = sd_bus_process(bus, nullptr);
        if (r < 0) {
            fprintf(stderr, "bus failed: %s\n", strerror(-r));
            return 2;
        }
        if (r == 0)
            sd_bus_wait(bus, UINT64_MAX);
    }
    fflush(stdout);
    sd_bus_flush_close_unref(bus);
    return 0;
}
