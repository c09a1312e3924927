// Disk identity (README, "Disk identity"): one disk, one lease, on every host
// and beside libvirt. Two hosts (real sanlock daemons sharing one lease
// directory, real systemd-machined) name files reached through a symlinked
// directory, a bind mount and a private mount namespace alike, and take the
// lease libvirt's plugin would take for the literal path a VM was given; two
// hosts with emulated udev (umockdev) name one LUN alike whatever its local
// paths, and refuse a device with no identity.
#include "host.hpp"
#include "udev_testbed.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>

using namespace vmtest;

namespace {

// A qemu-like VM: opens `open` read-write and sleeps, with `-drive
// file=LITERAL` on its command line as libvirt would start qemu.
Child qemu_like(const std::string &dir, const std::string &name, const std::string &open, const std::string &literal) {
    return Child({"/usr/bin/python3", "-c", "import os, sys, time\nfd = os.open(sys.argv[3], os.O_RDWR)\ntime.sleep(600)",
                  "-drive", "file=" + literal + ",format=raw,if=none,id=drive-virtio-disk0", open},
                 {}, dir + "/" + name + ".log");
}

// What libvirt's sanlock plugin on host `id` does for a disk it knows by
// `path`: acquire md5(path) on its own connection. The probe's exit status:
// 0 it got it (and gave it back), 2 sanlock refused it.
int libvirt_takes(Host &h, uint32_t id, const std::string &lease_dir, const std::string &path) {
    std::string probe = required_env("SANLOCK_PROBE");
    auto env = h.sanlock.env();
    // The probe is a test tool (built with the sanitizers too): its own
    // leaks at exit must not turn "got it" into a failure status.
    env["ASAN_OPTIONS"] = "detect_leaks=0";
    run({probe, "-d", lease_dir, "-i", std::to_string(id), "-t", "1", "lease", lease_name(path)}, env);
    return run({probe, "-d", lease_dir, "-i", std::to_string(id), "-t", "1", "-P", "acquire", lease_name(path),
                "release"},
               env);
}

class FileIdentity : public HostsSuite<FileIdentity> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-file-id");
        std::filesystem::create_directories(images());
        std::filesystem::create_symlink("images", link());
        std::filesystem::create_directories(bound());
        std::filesystem::create_directories(*root / "ns-mnt");
        ASSERT_EQ(mount(images().c_str(), bound().c_str(), nullptr, MS_BIND, nullptr), 0)
            << "bind mount: " << std::strerror(errno) << " (the suite runs as root)";
        HostOptions o;
        o.with_machined = true;
        // Only the symlinked directory is named: it must match files whose
        // identity lies in images/.
        o.extra_yaml = "discovery:\n  open_files: true\n  include: [\"" + link() + "/*\"]\n"
                       "machines:\n  - match: \"lv-*\"\n    disks:\n      - {path: " + link() + "/lv.img}\n";
        start_hosts({o, o});
    }
    static void TearDownTestSuite() {
        umount2(bound().c_str(), MNT_DETACH);
        HostsSuite::TearDownTestSuite();
    }
    static std::string images() { return *root / "images"; }
    static std::string link() { return *root / "link"; }
    static std::string bound() { return *root / "bound"; }
    static std::string image(const std::string &name) {
        std::string path = images() + "/" + name;
        std::ofstream(path).put('x');
        return path;
    }
};

TEST_F(FileIdentity, AVmGivenALinkPathHoldsTheImageUnderItsIdentityAndTheLiteralPath) {
    const std::string identity = image("q.img");
    const std::string literal = link() + "/q.img";
    Child vm = qemu_like(root->path(), "q-1", literal, literal);
    ASSERT_EQ(h1->machined->create_machine("q-1", vm.pid()).rfind("o ", 0), 0u);
    auto acquired = h1->client->wait_event("LeaseAcquired", {"q-1", identity}, 10s);
    ASSERT_TRUE(acquired) << h1->agent->log();
    sdbus::ObjectPath lease(acquired->args.at(2));
    EXPECT_EQ(std::string(lease), "/org/vmlease/lease/" + lease_name(identity));
    EXPECT_EQ(h1->client->lease_aliases(lease), std::vector<std::string>{literal});

    // Both hosts name it alike, and say so without taking anything.
    for (Host *h : {h1, h2}) {
        auto [id, resource, aliases] = h->client->IdentifyDisk(literal);
        EXPECT_EQ(id, identity);
        EXPECT_EQ(resource, lease_name(identity));
        ASSERT_EQ(aliases.size(), 1u);
        EXPECT_EQ(aliases[0].get<0>(), literal);
        EXPECT_EQ(aliases[0].get<1>(), lease_name(literal));
    }

    // Host 2 is refused the disk under every name: the link, the resolved
    // path, a bind mount of the directory, a roundabout spelling.
    for (const std::string &name : {literal, identity, bound() + "/q.img", link() + "/../images/./q.img"})
        EXPECT_EQ(intrude(*h2, name), "org.vmlease.Error.LeaseHeld") << name;
    // And libvirt on host 2, hashing the literal path of its domain XML.
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, literal), 2);
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, identity), 2);

    vm.signal(SIGKILL);
    ASSERT_TRUE(h1->client->wait_for("LeaseReleased", {"q-1", identity}, 10s)) << h1->agent->log();
    // The alias went with it.
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, literal), 0);
}

TEST_F(FileIdentity, AVmOpeningTheLinkOrTheBindMountIsFoundAndNamedByTheResolvedPath) {
    // No command line to read: the include pattern, resolved through the
    // symlink, matches the file's identity.
    const std::string identity = image("p.img");
    Child plain = vm_process(root->path(), "p-1", link() + "/p.img", true);
    ASSERT_EQ(h1->machined->create_machine("p-1", plain.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"p-1", identity}, 10s)) << h1->agent->log();

    const std::string other = image("b.img");
    Child through_mount = vm_process(root->path(), "b-1", bound() + "/b.img", true);
    ASSERT_EQ(h1->machined->create_machine("b-1", through_mount.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"b-1", other}, 10s)) << h1->agent->log();
    EXPECT_EQ(intrude(*h2, link() + "/b.img"), "org.vmlease.Error.LeaseHeld");

    plain.signal(SIGKILL);
    through_mount.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"p-1", identity}, 10s));
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"b-1", other}, 10s));
}

TEST_F(FileIdentity, AVmInItsOwnMountNamespaceIsNamedByTheHostsPath) {
    // The VM binds the images directory somewhere only it sees and opens the
    // disk there: its /proc/PID/fd link names a path the host does not have.
    const std::string identity = image("n.img");
    const std::string hidden = root->path() + "/ns-mnt";
    Child vm({"/usr/bin/unshare", "-m", "/bin/bash", "-c",
              "mount --bind '" + images() + "' '" + hidden + "' && exec 3<>'" + hidden + "/n.img' && exec sleep 600"},
             {}, root->path() + "/n-1.log");
    ASSERT_TRUE(eventually([&] { return read_file("/proc/" + std::to_string(vm.pid()) + "/comm") == "sleep\n"; }, 10s))
        << read_file(root->path() + "/n-1.log");
    ASSERT_EQ(h1->machined->create_machine("n-1", vm.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"n-1", identity}, 10s)) << h1->agent->log();
    EXPECT_EQ(intrude(*h2, identity), "org.vmlease.Error.LeaseHeld");
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"n-1", identity}, 10s));
}

TEST_F(FileIdentity, ALeaseTakenUnderTheOldNameIsKeptAcrossTheUpgradeAndTheNewOneAdded) {
    // vmlease before the identity rule named this file by its literal path
    // (the link): the running VM's lease is that name, held by sanlock as an
    // orphan of the old agent, and the state file says whose it is.
    const std::string identity = image("u.img");
    const std::string old_name = link() + "/u.img";
    kill_agent(*h1);
    std::string probe = required_env("SANLOCK_PROBE");
    run({probe, "-d", lease_dir, "-i", "1", "-t", "1", "lease", lease_name(old_name)}, h1->sanlock.env());
    ASSERT_EQ(run({probe, "-d", lease_dir, "-i", "1", "-t", "1", "acquire", lease_name(old_name), "exit"},
                  h1->sanlock.env()),
              0);
    // qemu was given the old name: the identity's lease would take it as an
    // alias, which the machine holds already.
    Child vm = qemu_like(root->path(), "u-1", old_name, old_name);
    ASSERT_EQ(h1->machined->create_machine("u-1", vm.pid()).rfind("o ", 0), 0u);
    write_file(h1->dir + "/agent/runtime/leases", "vmlease-state 1\nowner machine u-1\nlease " + lease_name(old_name) +
                                                      " exclusive u-1 " + old_name + "\n");
    h1->start_agent();
    ASSERT_TRUE(h1->client->wait_property("LockspaceState", "joined")) << h1->agent->log();

    // The old lease is adopted, never given back while the VM runs; the
    // identity's lease is taken beside it.
    ASSERT_TRUE(h1->client->wait_for("LeaseAcquired", {"u-1", identity}, 10s)) << h1->agent->log();
    EXPECT_EQ(leases_of(*h1), (Leases{{old_name, "u-1", "held"}, {identity, "u-1", "held"}}));
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, old_name), 2);
    EXPECT_EQ(intrude(*h2, identity), "org.vmlease.Error.LeaseHeld");

    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"u-1", identity}, 10s));
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"u-1", old_name}, 10s));
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, old_name), 0);
}

TEST_F(FileIdentity, LibvirtsPluginInTheVmHoldingTheLiteralPathIsNoConflict) {
    // libvirt's sanlock plugin: the VM process itself holds md5(literal path
    // of its domain XML) on its own sanlock connection. The agent, asked for
    // the identity and that alias, takes the identity alone.
    const std::string identity = image("lv.img");
    const std::string literal = link() + "/lv.img";
    std::string probe = required_env("SANLOCK_PROBE");
    auto env = h1->sanlock.env();
    run({probe, "-d", lease_dir, "-i", "1", "-t", "1", "lease", lease_name(literal)}, env);
    Child vm({probe, "-d", lease_dir, "-i", "1", "-t", "1", "-P", "acquire", lease_name(literal), "hold", "600"}, env,
             root->path() + "/lv-1.log");
    ASSERT_TRUE(eventually([&] {
        std::string status;
        run({required_env("SANLOCK"), "client", "status"}, env, &status);
        return status.find(lease_name(literal)) != std::string::npos &&
               status.find(" p " + std::to_string(vm.pid())) != std::string::npos;
    }, 10s)) << read_file(root->path() + "/lv-1.log");
    ASSERT_EQ(h1->machined->create_machine("lv-1", vm.pid()).rfind("o ", 0), 0u);
    auto acquired = h1->client->wait_event("LeaseAcquired", {"lv-1", identity}, 10s);
    ASSERT_TRUE(acquired) << h1->agent->log();
    // Protected: its one disk's outcome is in, and it is the lease, not a conflict.
    EXPECT_TRUE(eventually([&] { return listed_protected(*h1, "lv-1"); }, 5s));
    EXPECT_FALSE(h1->client->wait_for("LeaseConflict", {"lv-1"}, 0s)) << h1->agent->log();
    EXPECT_TRUE(vm.running());
    // Not ours: the plugin keeps it.
    EXPECT_TRUE(h1->client->lease_aliases(sdbus::ObjectPath(acquired->args.at(2))).empty());
    EXPECT_EQ(intrude(*h2, literal), "org.vmlease.Error.LeaseHeld");
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, literal), 2);
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"lv-1", identity}, 10s)) << h1->agent->log();
}

// --- block devices: what the storage says it is --------------------------------

// One LUN: its WWID as scsi_id reports it (multipath's WWID and the paths' ID_SERIAL).
const std::string kWwid = "3600a0b800011112222";
const std::string kLun = "/dev/disk/by-id/scsi-" + kWwid;
const std::string kIqn = "iqn.2026-01.example:db-lun-1";
const std::string kIscsiPortal1 = "ip-192.0.2.8:3260-iscsi-" + kIqn;
const std::string kIscsiPortal2 = "ip-192.0.2.9:3260-iscsi-" + kIqn;
const std::string kFcHost1 = "pci-0000:41:00.0-fc-0x500a098188aa0001-lun-0";
const std::string kFcHost1b = "pci-0000:41:00.1-fc-0x500a098188aa0002-lun-0";
const std::string kFcHost2 = "pci-0000:03:00.0-fc-0x500a098188aa0001-lun-0";
const std::string kNoIdPath = "pci-0000:00:10.0-scsi-0:0:4:0";

class DeviceIdentity : public HostsSuite<DeviceIdentity> {
protected:
    static void SetUpTestSuite() {
        make_site("vml-dev-id");
        // Host 1: two FC paths of one LUN and its multipath map, an iSCSI
        // LUN, and a disk udev knows nothing stable about.
        tb1 = std::make_unique<UdevTestbed>(*root / "tb1");
        tb1->add("sdb", true, "id_serial=" + kWwid + " wwn=0x600a0b800011112222 path=" + kFcHost1);
        tb1->add("sdc", true, "id_serial=" + kWwid + " wwn=0x600a0b800011112222 path=" + kFcHost1b);
        tb1->add("sdd", true, "dm_uuid=mpath-" + kWwid + " dm_name=mpatha path=-");
        tb1->add("sde", true, "serial=- path=" + kNoIdPath);
        tb1->add("sdf", true, "serial=- path=" + kIscsiPortal1);
        // Host 2: the same LUN through an HBA at another PCI address and its
        // map under another name, the iSCSI LUN through another portal.
        tb2 = std::make_unique<UdevTestbed>(*root / "tb2");
        tb2->add("sdg", true, "id_serial=" + kWwid + " wwn=0x600a0b800011112222 path=" + kFcHost2);
        tb2->add("sdh", true, "dm_uuid=mpath-" + kWwid + " dm_name=mpathb path=-");
        tb2->add("sdi", true, "serial=- path=" + kIscsiPortal2);
        std::vector<HostOptions> options(2);
        for (size_t i = 0; i < 2; i++) {
            UdevTestbed &tb = i == 0 ? *tb1 : *tb2;
            options[i].agent_wrapper = tb.agent_wrapper();
            options[i].agent_env = tb.agent_env();
        }
        options[0].with_machined = true;
        options[0].extra_yaml = "machines:\n"
                                "  - match: \"raw-*\"\n"
                                "    disks:\n"
                                "      - {path: /dev/disk/by-path/" + kNoIdPath + ", identity: path}\n";
        start_hosts(options);
    }
    static void TearDownTestSuite() {
        HostsSuite::TearDownTestSuite();
        tb1.reset();
        tb2.reset();
    }
    static inline std::unique_ptr<UdevTestbed> tb1, tb2;
};

TEST_F(DeviceIdentity, ThePathsOfOneLunAndItsMultipathMapAreOneDiskOnEveryHost) {
    auto lease = h1->client->AcquireDisk("vm-a", "/dev/sdb", "exclusive", {});
    EXPECT_EQ(std::string(lease), "/org/vmlease/lease/" + lease_name(kLun));
    // A kernel name is no alias (another host's /dev/sdb is another disk).
    EXPECT_TRUE(h1->client->lease_aliases(lease).empty());
    // The other path, by either name, and the map over both: the same disk.
    for (const std::string &name : {std::string("/dev/sdc"), "/dev/disk/by-path/" + kFcHost1b, std::string("/dev/sdd")})
        EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("vm-b", name, "exclusive", {}); }),
                  "org.vmlease.Error.LeaseHeld")
            << name;
    // Host 2 reaches the LUN through an HBA at another PCI address, and
    // through its multipath map: other local names, one identity.
    for (const std::string &name : {"/dev/disk/by-path/" + kFcHost2, std::string("/dev/sdg"), std::string("/dev/sdh")})
        EXPECT_EQ(intrude(*h2, name), "org.vmlease.Error.LeaseHeld") << name;
    h1->client->ReleaseDisk("vm-a", "/dev/sdc");  // any of its names
    // The other way round: the map on host 2, a bare path on host 1.
    h2->client->AcquireDisk("vm-m", "/dev/sdh", "exclusive", {});
    EXPECT_EQ(intrude(*h1, "/dev/sdc"), "org.vmlease.Error.LeaseHeld");
    h2->client->ReleaseDisk("vm-m", "/dev/sdh");
    EXPECT_EQ(intrude(*h1, "/dev/sdc"), "");
}

TEST_F(DeviceIdentity, AnIscsiLunWithoutASerialIsNamedByItsTargetWhateverThePortal) {
    const std::string by_path = "/dev/disk/by-path/" + kIscsiPortal1;
    auto lease = h1->client->AcquireDisk("vm-i", by_path, "exclusive", {});
    EXPECT_EQ(std::string(lease), "/org/vmlease/lease/" + lease_name("/dev/disk/by-id/iscsi-" + kIqn));
    // The by-path name is the same on every host that uses that portal: an alias.
    EXPECT_EQ(h1->client->lease_aliases(lease), std::vector<std::string>{by_path});
    EXPECT_EQ(intrude(*h2, "/dev/sdi"), "org.vmlease.Error.LeaseHeld");
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, by_path), 2);
    h1->client->ReleaseDisk("vm-i", "/dev/sdf");
    EXPECT_EQ(libvirt_takes(*h2, 2, lease_dir, by_path), 0);
}

TEST_F(DeviceIdentity, ADeviceWithNoIdentityIsRefusedUnlessARuleVouchesForItsPath) {
    std::string message;
    for (const std::string &name : {std::string("/dev/sde"), "/dev/disk/by-path/" + kNoIdPath}) {
        EXPECT_EQ(error_of([&] { h1->client->AcquireDisk("vm-x", name, "exclusive", {}); }, &message),
                  "org.vmlease.Error.InvalidDisk")
            << name;
        EXPECT_NE(message.find("no stable identity"), std::string::npos) << message;
        EXPECT_NE(message.find("identity: path"), std::string::npos) << message;
        EXPECT_EQ(error_of([&] { h1->client->IdentifyDisk(name); }, &message), "org.vmlease.Error.InvalidDisk");
        EXPECT_NE(message.find("no stable identity"), std::string::npos) << message;
    }
    EXPECT_TRUE(h1->client->ListLeases().empty());
    // The administrator's rule names it by its path.
    Child vm({"/bin/sleep", "600"}, {}, root->path() + "/raw-1.log");
    ASSERT_EQ(h1->machined->create_machine("raw-1", vm.pid()).rfind("o ", 0), 0u);
    EXPECT_TRUE(h1->client->wait_for("LeaseAcquired", {"raw-1", "/dev/disk/by-path/" + kNoIdPath}, 10s))
        << h1->agent->log();
    vm.signal(SIGKILL);
    EXPECT_TRUE(h1->client->wait_for("LeaseReleased", {"raw-1"}, 10s));
}

}  // namespace
