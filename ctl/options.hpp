// vmleasectl: the command line (options, help text).
#pragma once

#include "cli.hpp"

namespace vmleasectl {

// Parses argv; throws Failure{kExitUsage} on a bad option or value.
Options parse_options(int argc, char **argv);
void print_help();
void print_version();

}  // namespace vmleasectl
