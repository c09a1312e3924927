#include "options.hpp"

#include <getopt.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#ifndef VMLEASE_VERSION
#define VMLEASE_VERSION "unknown"
#endif

namespace vmleasectl {
namespace {

enum LongOnly : int {
    kArgVersion = 0x100,
    kArgJson,
    kArgNoLegend,
    kArgNoPager,
    kArgNoAskPassword,
    kArgShared,
    kArgGrace,
    kArgDryRun,
};

const struct option kLongOptions[] = {
    {"help", no_argument, nullptr, 'h'},
    {"version", no_argument, nullptr, kArgVersion},
    {"json", required_argument, nullptr, kArgJson},
    {"no-legend", no_argument, nullptr, kArgNoLegend},
    {"no-pager", no_argument, nullptr, kArgNoPager},
    {"no-ask-password", no_argument, nullptr, kArgNoAskPassword},
    {"host", required_argument, nullptr, 'H'},
    {"shared", no_argument, nullptr, kArgShared},
    {"grace", required_argument, nullptr, kArgGrace},
    {"dry-run", no_argument, nullptr, kArgDryRun},
    {},
};

JsonMode parse_json_mode(const std::string &value) {
    if (value == "short")
        return JsonMode::Short;
    if (value == "pretty")
        return JsonMode::Pretty;
    if (value == "off")
        return JsonMode::Off;
    usage_error("--json takes short, pretty or off, not \"" + value + "\"");
}

uint32_t parse_seconds(const std::string &value) {
    errno = 0;
    char *end = nullptr;
    unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    bool digits_only = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    if (!digits_only || errno || *end || n == 0 || n > UINT32_MAX)
        usage_error("--grace takes a number of seconds greater than 0, not \"" + value + "\"");
    return static_cast<uint32_t>(n);
}

// The option getopt_long just refused, as the user wrote it.
std::string refused_option(char **argv) {
    std::string arg = argv[optind - 1];
    if (arg.rfind("--", 0) == 0)
        return arg.substr(0, arg.find('='));
    return std::string("-") + static_cast<char>(optopt);
}

void apply(Options &o, int c, char **argv) {
    switch (c) {
    case 'h': o.help = true; break;
    case kArgVersion: o.version = true; break;
    case kArgJson: o.json = parse_json_mode(optarg); break;
    case kArgNoLegend: o.legend = false; break;
    case kArgNoPager: o.pager = false; break;
    case kArgNoAskPassword: o.ask_password = false; break;
    case 'H':
        if (!*optarg)
            usage_error("--host needs [USER@]HOST");
        o.host = optarg;
        break;
    case kArgShared: o.shared = true; o.verb_options |= kOptShared; break;
    case kArgGrace: o.grace_seconds = parse_seconds(optarg); o.verb_options |= kOptGrace; break;
    case kArgDryRun: o.dry_run = true; o.verb_options |= kOptDryRun; break;
    case ':': usage_error("option " + refused_option(argv) + " needs a value");
    default: {
        std::string name = refused_option(argv);
        bool known = std::any_of(std::begin(kLongOptions), std::end(kLongOptions) - 1,
                                 [&](const option &o) { return name == std::string("--") + o.name; });
        usage_error(known ? "option " + name + " takes no value" : "unknown option " + name);
    }
    }
}

}  // namespace

Options parse_options(int argc, char **argv) {
    Options o;
    opterr = 0;  // we say what is wrong ourselves
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hH:", kLongOptions, nullptr)) >= 0)
        apply(o, c, argv);
    for (int i = optind; i < argc; i++)
        o.words.emplace_back(argv[i]);
    return o;
}

void print_help() {
    std::cout << R"(vmleasectl [OPTIONS...] COMMAND ...

Query and control vmleased, the sanlock disk-lease agent for virtual machines.

Commands:
  status                     Show this host's agent: host id, lockspace, counts
  list                       List the leases this host holds
  machines                   List the machines vmlease protects
  inspect DISK               Show which hosts hold DISK's lease (live or dead)
  acquire OWNER DISK         Take an exclusive lease (--shared: shared) on DISK
  release OWNER DISK         Release OWNER's lease on DISK
  register OWNER DISK...     Reserve disks before machine OWNER starts;
                             DISK is PATH[:exclusive|:shared|:none]
  release-machine OWNER      Release every lease OWNER holds
  resume OWNER               Take back a paused machine's leases at the versions
                             it had, then let it go on
  cleanup                    Delete lease files that no host uses
  reload                     Re-read the configuration
  monitor                    Print vmleased's signals until interrupted

Options:
  -h --help                  Show this help
     --version               Show the version of vmleasectl
     --json=short|pretty|off Print JSON instead of text
     --no-legend             Omit table headers and footers
     --no-pager              Do not pipe output into a pager
     --no-ask-password       Do not ask for authentication
  -H --host=[USER@]HOST      Operate on a remote host (over ssh)
     --shared                acquire: take a shared lease
     --grace=SECONDS         register: release the reservation if the machine
                             has not appeared after SECONDS (default 120)
     --dry-run               cleanup: list what would be removed, remove nothing

DISK paths are made absolute against the current directory.
Exit status: 0 success, 1 failure, 2 usage error, 4 no such lease or owner.
)";
}

void print_version() { std::cout << "vmleasectl " VMLEASE_VERSION "\n"; }

}  // namespace vmleasectl
