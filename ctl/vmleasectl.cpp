// vmleasectl: the command-line client of vmleased (org.vmlease on the system bus).
#include "bus.hpp"
#include "options.hpp"
#include "output.hpp"
#include "polkit_agent.hpp"
#include "verbs.hpp"

#include <iostream>

using namespace vmleasectl;

namespace {

const char *option_name(unsigned bit) {
    switch (bit) {
    case kOptShared: return "--shared";
    case kOptGrace: return "--grace";
    default: return "--dry-run";
    }
}

const Verb &checked_verb(const Options &o) {
    if (o.words.empty())
        usage_error("missing command");
    const Verb *verb = find_verb(o.words[0]);
    if (!verb)
        usage_error("unknown command \"" + o.words[0] + "\"");
    size_t n = o.words.size() - 1;
    if (n < verb->min_args)
        usage_error(std::string(verb->name) + ": too few arguments");
    if (n > verb->max_args)
        usage_error(std::string(verb->name) + ": too many arguments");
    for (unsigned bit : {kOptShared, kOptGrace, kOptDryRun})
        if ((o.verb_options & bit) && !(verb->accepts & bit))
            usage_error(std::string(option_name(bit)) + " does not apply to " + verb->name);
    return *verb;
}

int run(int argc, char **argv) {
    Options options = parse_options(argc, argv);
    if (options.help) {
        print_help();
        return kExitOk;
    }
    if (options.version) {
        print_version();
        return kExitOk;
    }
    const Verb &verb = checked_verb(options);
    Context c{nullptr, options, make_output(options)};
    BusPtr bus = connect_bus(options);
    c.bus = bus.get();
    PolkitAgent agent;
    if (verb.authorizes && options.ask_password && options.host.empty())
        agent.open();
    Pager pager;
    if (verb.pages && options.pager && options.json == JsonMode::Off)
        pager.open();
    return verb.run(c, Args(options.words.begin() + 1, options.words.end()));
}

}  // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const Failure &f) {
        std::cout.flush();
        std::cerr << "vmleasectl: " << f.message << std::endl;
        return f.exit_code;
    } catch (const std::exception &e) {
        std::cerr << "vmleasectl: " << e.what() << std::endl;
        return kExitFailure;
    }
}
