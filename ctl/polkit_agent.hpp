// vmleasectl: a polkit text agent (pkttyagent) for the duration of a call
// that may need authentication, as systemd's polkit_agent_open() does.
#pragma once

#include <sys/types.h>

namespace vmleasectl {

class PolkitAgent {
public:
    PolkitAgent() = default;
    PolkitAgent(const PolkitAgent &) = delete;
    PolkitAgent &operator=(const PolkitAgent &) = delete;
    ~PolkitAgent();
    // Starts pkttyagent when stdin is a terminal and we are not root (polkit
    // always authorizes root); returns once it has registered (or given up).
    void open();

private:
    pid_t pid_ = -1;
};

}  // namespace vmleasectl
