// vmleased: parse the command line, run the Daemon.
#include "daemon.hpp"
#include "log.hpp"
#include "version.hpp"

#include <getopt.h>

#include <cstdio>
#include <exception>

int main(int argc, char **argv) {
    vmlease::DaemonOptions options;
    static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                                      {"help", no_argument, nullptr, 'h'},
                                      {"version", no_argument, nullptr, 'V'},
                                      {nullptr, 0, nullptr, 0}};
    for (int c; (c = getopt_long(argc, argv, "c:hV", longopts, nullptr)) != -1;) {
        switch (c) {
        case 'c': options.config_path = optarg; break;
        case 'V': printf("vmleased %s\n", VMLEASE_VERSION); return 0;
        case 'h':
            printf("Usage: %s [--config PATH]\n\n"
                   "Keeps two virtual machines from ever writing the same disk, with sanlock leases.\n\n"
                   "  -c, --config PATH   configuration file (default /etc/vmlease/vmlease.yaml)\n"
                   "  -h, --help          show this help\n"
                   "  -V, --version       show the version\n",
                   argv[0]);
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
        return 2;
    }
    try {
        vmlease::Daemon daemon(options);
        return daemon.run();
    } catch (const vmlease::ConfigError &e) {
        vmlease::log_error(std::string("invalid configuration: ") + e.what());
        return 78;  // EX_CONFIG: systemd shows it as "configuration error"
    } catch (const std::exception &e) {
        vmlease::log_error(std::string("fatal: ") + e.what());
        return 1;
    }
}
