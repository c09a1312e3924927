// vmleased: parse the command line, run the Daemon.
#include "daemon.hpp"
#include "log.hpp"
#include "version.hpp"

#include <getopt.h>
#include <systemd/sd-daemon.h>

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
        const std::string message = std::string("invalid configuration: ") + e.what();
        vmlease::log_error(message);
        // systemd keeps the unit's status text after the exit: `systemctl
        // status` shows it, and vmleasectl reads it (StatusText) to tell a
        // client at once why the D-Bus activation it asked for failed. The
        // barrier: systemd must have read it before it sees the exit.
        sd_notify(0, ("STATUS=" + message).c_str());
        sd_notify_barrier(0, 1000000);
        return 78;  // EX_CONFIG: systemd shows it as "configuration error"
    } catch (const std::exception &e) {
        vmlease::log_error(std::string("fatal: ") + e.what());
        return 1;
    }
}
