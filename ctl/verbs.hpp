// vmleasectl: the verbs, one function each, and the table that names them.
#pragma once

#include "cli.hpp"
#include "output.hpp"

#include <systemd/sd-bus.h>

namespace vmleasectl {

struct Context {
    sd_bus *bus;
    const Options &options;
    Output out;
};

struct Verb {
    const char *name;
    size_t min_args;
    size_t max_args;     // SIZE_MAX: any number
    unsigned accepts;    // VerbOptions it takes
    bool authorizes;     // may need polkit authentication (start the agent)
    bool pages;          // table output goes through the pager
    int (*run)(Context &, const Args &);
};

// nullptr for an unknown verb.
const Verb *find_verb(const std::string &name);

// A disk named on the command line, made absolute against the cwd.
std::string absolute_disk(const std::string &disk);

int verb_monitor(Context &c, const Args &args);  // monitor.cpp

}  // namespace vmleasectl
