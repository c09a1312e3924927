// An emulated udev world for one test (tests/support/udev-testbed, umockdev):
// disks with ID_PATH and by-path links appear and disappear on command, and
// a vmleased started with agent_env()/agent_wrapper() sees them as real.
#pragma once

#include "harness.hpp"

#include <map>
#include <string>
#include <vector>

namespace vmtest {

struct EmulatedDisk {
    std::string name;     // sdb
    std::string by_path;  // /dev/disk/by-path/pci-...-scsi-0:0:1:0 ("-": none)
    std::string by_id;    // /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_<serial>, dm-uuid-... ("-": none)
};

class UdevTestbed {
public:
    explicit UdevTestbed(const std::string &dir);
    ~UdevTestbed();

    // A SCSI disk sd<letter>, major 8, minor 16 * (letter - 'a'). `extra`:
    // what udev says about it besides, as tests/support/udev-testbed takes it
    // ("wwn=0x...", "path=ip-..." or "path=-", "serial=-", "dm_uuid=...").
    EmulatedDisk add(const std::string &name, bool tagged = true, const std::string &extra = "");
    void remove(const std::string &name);
    // `n` remove/add events alternating over two present disks; returns the
    // seconds it took to hand them all to the monitor.
    double burst(unsigned n, const std::string &a, const std::string &b);
    // Wait until `n` udev monitors listen (the agent has subscribed).
    void wait_for_listeners(unsigned n);

    // Environment and command prefix that run a program inside the testbed:
    // umockdev's preload, and a private mount namespace with the testbed's
    // udev database on /run/udev.
    std::map<std::string, std::string> agent_env() const;
    std::vector<std::string> agent_wrapper() const;

private:
    std::string command(const std::string &line);

    std::string dir_, root_, db_;
    int to_ = -1, from_ = -1;
    Child child_;
};

}  // namespace vmtest
