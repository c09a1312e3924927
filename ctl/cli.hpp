// vmleasectl: what every part of the client shares (options, exit codes, the
// error that ends the program).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmleasectl {

using Json = nlohmann::ordered_json;
using Args = std::vector<std::string>;

enum class JsonMode { Off, Short, Pretty };

// Options that only some verbs accept (a bit set, see Verb::accepts).
enum VerbOption : unsigned { kOptShared = 1, kOptGrace = 2, kOptDryRun = 4 };

struct Options {
    JsonMode json = JsonMode::Off;
    bool legend = true;
    bool pager = true;
    bool ask_password = true;
    std::string host;  // empty: the local system bus
    bool shared = false;
    std::optional<uint32_t> grace_seconds;
    bool dry_run = false;
    unsigned verb_options = 0;  // which VerbOptions were given
    bool help = false;
    bool version = false;
    Args words;  // the verb and its arguments
};

// Exit codes: the LSB-ish ones machinectl uses.
enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2, kExitNoSuchObject = 4 };

// An error that ends the program; main prints "vmleasectl: <message>" on stderr.
struct Failure {
    int exit_code;
    std::string message;
};

[[noreturn]] inline void usage_error(const std::string &message) {
    throw Failure{kExitUsage, message + "; see vmleasectl --help"};
}

}  // namespace vmleasectl
