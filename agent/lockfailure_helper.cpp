// vmlease-lockfailure: the killpath program sanlock runs (as root) when this
// host can no longer renew its lockspace and leases held by vmleased's
// connections are at risk. For now it records the event in the journal;
// the agent-notification and fallback actions build on this entry point.
#include "log.hpp"

#include <string>

int main(int argc, char **argv) {
    std::string args;
    for (int i = 1; i < argc; i++)
        args += std::string(i > 1 ? " " : "") + argv[i];
    vmlease::log_message(LOG_CRIT,
                         "sanlock ran the lock-failure helper: this host's lockspace can no longer be renewed (args: " +
                             args + ")",
                         {{"HELPER_ARGS", args}}, vmlease::message_id::kLockFailure);
    return 0;
}
