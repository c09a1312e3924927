// vmlease-lockfailure: the killpath program sanlock runs (as root, args
// split on whitespace) when this host can no longer renew its lockspace and
// the leases held by vmleased's connections are at risk. Its one argument is
// the agent's runtime directory.
//
// It tells the agent (lockfailure.sock) and exits at once if the agent
// answers within kAgentTimeoutMs. Otherwise (agent stopped, hung, crashed)
// it applies each machine's on_lockfailure itself through machined, from the
// plan the agent keeps written next to the socket, so protection never
// depends on the agent being alive.
#include "lockfailure_plan.hpp"
#include "log.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using namespace vmlease;

constexpr int kAgentTimeoutMs = 2000;

// "ok" from the agent, or false.
bool tell_agent(const std::string &runtime_dir) {
    sockaddr_un addr{};
    std::string path = runtime_dir + "/" + kLockFailureSocket;
    if (path.size() >= sizeof addr.sun_path)
        return false;
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
        send(fd, "lockfailure\n", 12, MSG_NOSIGNAL) == 12) {
        pollfd p{fd, POLLIN, 0};
        char buf[8] = {};
        ok = poll(&p, 1, kAgentTimeoutMs) == 1 && recv(fd, buf, sizeof buf - 1, 0) > 0 &&
             std::strncmp(buf, "ok", 2) == 0;
    }
    close(fd);
    return ok;
}

std::string apply(sd_bus *bus, const LockFailurePlan::Entry &m) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = 0;
    const char *dest = "org.freedesktop.machine1", *path = "/org/freedesktop/machine1",
               *iface = "org.freedesktop.machine1.Manager";
    if (m.action == "poweroff")
        r = sd_bus_call_method(bus, dest, path, iface, "KillMachine", &error, nullptr, "ssi", m.machine.c_str(), "all",
                               SIGKILL);
    else if (m.action == "pause")
        r = sd_bus_call_method(bus, dest, path, iface, "KillMachine", &error, nullptr, "ssi", m.machine.c_str(), "all",
                               SIGSTOP);
    else if (m.action == "terminate" || m.action == "restart")
        r = sd_bus_call_method(bus, dest, path, iface, "TerminateMachine", &error, nullptr, "s", m.machine.c_str());
    else
        return "nothing to do";
    std::string result = r < 0 ? std::string("failed: ") + (error.message ? error.message : std::strerror(-r)) : "done";
    sd_bus_error_free(&error);
    return result;
}

int fall_back(const std::string &runtime_dir) {
    std::ifstream in(runtime_dir + "/" + kLockFailurePlanFile);
    std::stringstream text;
    text << in.rdbuf();
    auto plan = parse_plan(text.str());
    if (!plan) {
        log_message(LOG_CRIT, "vmleased did not answer and there is no usable plan in " + runtime_dir +
                                  "; no machine was stopped", {}, message_id::kLockFailureAction);
        return 1;
    }
    log_message(LOG_CRIT,
                "vmleased did not answer within " + std::to_string(kAgentTimeoutMs) + " ms; applying its plan for " +
                    std::to_string(plan->machines.size()) + " machine(s) through machined",
                {}, message_id::kLockFailureAction);
    sd_bus *bus = nullptr;
    int r = plan->bus_address.empty() ? sd_bus_open_system(&bus) : sd_bus_new(&bus);
    if (r >= 0 && !plan->bus_address.empty()) {
        sd_bus_set_address(bus, plan->bus_address.c_str());
        sd_bus_set_bus_client(bus, 1);
        r = sd_bus_start(bus);
    }
    int failures = 0;
    for (const auto &m : plan->machines) {
        std::string result = r < 0 ? std::string("no bus: ") + std::strerror(-r) : apply(bus, m);
        failures += result.rfind("failed", 0) == 0 || r < 0;
        log_message(LOG_CRIT,
                    "vmleased did not answer; lock-failure action " + m.action + " for machine " + m.machine + ": " +
                        result,
                    {{"OWNER", m.machine}, {"ACTION", m.action}, {"RESULT", result}}, message_id::kLockFailureAction);
    }
    sd_bus_flush_close_unref(bus);
    return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    std::string runtime_dir = argc > 1 ? argv[1] : "/run/vmlease";
    log_message(LOG_CRIT, "sanlock ran the lock-failure helper: this host's lockspace can no longer be renewed",
                {{"RUNTIME_DIRECTORY", runtime_dir}}, message_id::kLockFailure);
    if (tell_agent(runtime_dir))
        return 0;
    return fall_back(runtime_dir);
}
