#include "qemu_cmdline.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

using vmlease::kMaxQemuArgLength;
using vmlease::kMaxQemuDiskPaths;
using vmlease::qemu_disk_paths;
using vmlease::split_cmdline;

namespace {
using Paths = std::vector<std::string>;

// The disk paths of `qemu-system-x86_64 ARGS...`.
Paths paths(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/qemu-system-x86_64"};
    argv.insert(argv.end(), args);
    return qemu_disk_paths(argv);
}

// A string literal with its embedded NULs, as /proc/PID/cmdline holds them.
template <size_t N>
std::string bytes(const char (&s)[N]) {
    return std::string(s, N - 1);
}

// `{"a":` nested `depth` times around {"filename":"/images/deep.img"}.
std::string nested_filename(size_t depth) {
    std::string doc;
    for (size_t i = 0; i < depth; ++i) doc += R"({"a":)";
    doc += R"({"filename":"/images/deep.img"})";
    return doc + std::string(depth, '}');
}
}  // namespace

TEST(QemuCmdline, DriveFileKey) {
    EXPECT_EQ(paths({"-drive", "file=/var/lib/libvirt/images/a.img,format=raw,if=none,id=drive0"}),
              Paths{"/var/lib/libvirt/images/a.img"});
}

TEST(QemuCmdline, DriveFileKeyAnywhereInTheList) {
    EXPECT_EQ(paths({"-drive", "if=none,format=raw,id=drive0,file=/images/last.img", "-drive",
                     "readonly,file=/images/after-flag.img,if=virtio"}),
              (Paths{"/images/last.img", "/images/after-flag.img"}));
}

TEST(QemuCmdline, DriveFileFilename) {
    EXPECT_EQ(paths({"-drive", "file.driver=file,file.filename=/images/b.img,format=raw,if=none"}),
              Paths{"/images/b.img"});
}

TEST(QemuCmdline, DoubleCommaIsOneLiteralComma) {
    EXPECT_EQ(paths({"-drive", "file=/images/a,,b.img,format=raw", "-drive", "file=/images/c,,,,d.img,if=none",
                     "-drive", "format=raw,file=/images/tail,,", "-drive", "file=/images/e,,,format=raw"}),
              (Paths{"/images/a,b.img", "/images/c,,d.img", "/images/tail,", "/images/e,"}));
}

TEST(QemuCmdline, PathWithCommaInEachForm) {
    EXPECT_EQ(paths({"-blockdev", "driver=file,filename=/images/f,,g.img,node-name=n1", "-blockdev",
                     R"({"driver":"file","filename":"/images/h,i.img","node-name":"n2"})", "-hda",
                     "/images/j,k.img", "-hdb", "/images/l,,m.img"}),
              // The JSON form and the plain file options take the name literally.
              (Paths{"/images/f,g.img", "/images/h,i.img", "/images/j,k.img", "/images/l,,m.img"}));
}

TEST(QemuCmdline, DoubleDashSpelling) {
    EXPECT_EQ(paths({"--drive", "file=/images/a.img", "--blockdev", R"({"driver":"file","filename":"/images/b.img"})",
                     "--hda", "/images/c.img", "--cdrom", "/images/d.iso"}),
              (Paths{"/images/a.img", "/images/b.img", "/images/c.img", "/images/d.iso"}));
}

TEST(QemuCmdline, EqualsFormAndTripleDashAreNotOptions) {
    EXPECT_EQ(paths({"-drive=file=/images/a.img", "-hda=/images/b.img", "--blockdev=driver=file,filename=/images/c.img",
                     "---drive", "file=/images/d.img"}),
              Paths{});
}

TEST(QemuCmdline, BlockdevJsonFile) {
    EXPECT_EQ(paths({"-blockdev", R"({"driver":"file","filename":"/var/lib/libvirt/images/a.qcow2",)"
                                  R"("node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"})"}),
              Paths{"/var/lib/libvirt/images/a.qcow2"});
}

TEST(QemuCmdline, BlockdevJsonHostDevice) {
    EXPECT_EQ(paths({"-blockdev",
                     R"({"driver":"host_device","filename":"/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.)"
                     R"(example:db-lun-1","node-name":"libvirt-2-storage","cache":{"direct":true,"no-flush":false}})"}),
              Paths{"/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1"});
}

TEST(QemuCmdline, BlockdevJsonNested) {
    EXPECT_EQ(paths({"-blockdev",
                     R"({"driver":"qcow2","node-name":"top","file":{"driver":"file","filename":"/images/top.qcow2"},)"
                     R"("backing":{"driver":"qcow2","file":{"driver":"file","filename":"/images/base.qcow2"},)"
                     R"("backing":null}})"}),
              (Paths{"/images/top.qcow2", "/images/base.qcow2"}));
}

TEST(QemuCmdline, BlockdevJsonWhitespaceNumbersLiteralsAndArrays) {
    EXPECT_EQ(paths({"-blockdev", "{ \"driver\" : \"file\" ,\n\t\"filename\" : \"/images/spaced.img\"\r\n}", "-blockdev",
                     R"({"filename":"/images/n.img","size":-1.5e+3,"x":0,"y":[1,2.25E-2,true,false,null,)"
                     R"({"filename":"/images/in-array.img"}],"z":[]})",
                     // A string in an array is no member named "filename".
                     "-blockdev", R"({"list":["/images/bare.img"],"filename":"/images/named.img"})"}),
              (Paths{"/images/spaced.img", "/images/n.img", "/images/in-array.img", "/images/named.img"}));
}

TEST(QemuCmdline, BlockdevJsonEscapes) {
    EXPECT_EQ(paths({"-blockdev", R"({"driver":"file","filename":"\/images\/q\"uote\\back\u0041.img"})", "-blockdev",
                     R"({"filename":"/images/new\nline\ttab\b\f\r"})", "-blockdev",
                     R"({"filename":"/images/caf\u00e9-\u20AC-\ud83d\ude00.img"})", "-blockdev",
                     R"({"filename":"/images/café.img"})", "-blockdev", R"({"file\u006eame":"/images/escaped-key.img"})"}),
              (Paths{"/images/q\"uote\\backA.img", "/images/new\nline\ttab\b\f\r",
                     "/images/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80.img", "/images/café.img",
                     "/images/escaped-key.img"}));
}

TEST(QemuCmdline, BlockdevJsonTakesOnlyAbsoluteStringFilenames) {
    EXPECT_EQ(paths({"-blockdev", R"({"driver":"file","filename":"relative.img"})", "-blockdev",
                     R"({"filename":"json:{\"driver\":\"file\",\"filename\":\"/images/x.img\"}"})", "-blockdev",
                     R"({"filename":42,"name":"/images/not-filename.img"})", "-blockdev",
                     R"({"filename":{"filename":"/images/inner.img"}})", "-blockdev", "{}"}),
              Paths{"/images/inner.img"});
}

TEST(QemuCmdline, BlockdevKeyval) {
    EXPECT_EQ(paths({"-blockdev", "driver=file,filename=/images/k1.img,node-name=k1", "-blockdev",
                     "driver=qcow2,file=k1,node-name=k1-format", "-blockdev",
                     "qcow2,file.driver=file,file.filename=/images/k2.qcow2,node-name=k2",
                     // For -blockdev, "file" names a node, never a file.
                     "-blockdev", "driver=qcow2,file=/images/not-a-node.img,node-name=k3"}),
              (Paths{"/images/k1.img", "/images/k2.qcow2"}));
}

TEST(QemuCmdline, LegacyPlainFileOptions) {
    EXPECT_EQ(paths({"-hda", "/images/hda.img", "-hdb", "/images/hdb.img", "-hdc", "/images/hdc.img", "-hdd",
                     "/images/hdd.img", "-fda", "/images/fda.img", "-fdb", "/images/fdb.img", "-mtdblock",
                     "/images/mtd.img", "-sd", "/images/sd.img", "-pflash", "/usr/share/OVMF/OVMF_CODE.fd"}),
              (Paths{"/images/hda.img", "/images/hdb.img", "/images/hdc.img", "/images/hdd.img", "/images/fda.img",
                     "/images/fdb.img", "/images/mtd.img", "/images/sd.img", "/usr/share/OVMF/OVMF_CODE.fd"}));
}

TEST(QemuCmdline, CdromIsReturnedThoughReadOnly) {
    EXPECT_EQ(paths({"-cdrom", "/var/lib/libvirt/images/install.iso", "-drive", "file=/images/ro.iso,media=cdrom,readonly=on"}),
              (Paths{"/var/lib/libvirt/images/install.iso", "/images/ro.iso"}));
}

TEST(QemuCmdline, DeviceObjectAndKernelAreNotDisks) {
    EXPECT_EQ(paths({"-device", "virtio-blk-pci,drive=drive0,id=virtio-disk0", "-device",
                     R"({"driver":"virtio-blk-pci","drive":"libvirt-1-format","filename":"/images/not-a-disk.img"})",
                     "-object",
                     R"({"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/lib/libvirt/qemu/key.aes"})",
                     "-kernel", "/boot/vmlinuz", "-initrd", "/boot/initrd.img"}),
              Paths{});
}

TEST(QemuCmdline, RelativePathsIgnored) {
    EXPECT_EQ(paths({"-drive", "file=images/a.img", "-hda", "disk.img", "-blockdev", "driver=file,filename=rel.img",
                     "-blockdev", R"({"driver":"file","filename":"./b.img"})", "-cdrom", "", "-drive", "file=,format=raw"}),
              Paths{});
}

TEST(QemuCmdline, ProtocolPrefixesIgnored) {
    EXPECT_EQ(paths({"-drive", "file=nbd:localhost:10809", "-drive", "file=iscsi://192.0.2.1/iqn.2026-01.example:t/1",
                     "-drive", "file=gluster://host/vol/img.qcow2", "-drive", "file=rbd:pool/image:conf=/etc/ceph/ceph.conf",
                     "-drive", R"(file=json:{"driver":"file",,"filename":"/images/j.img"},if=none)", "-drive",
                     "file=file:/images/prefixed.img", "-hda", "nbd://host/export", "-cdrom", "http://example.com/a.iso",
                     "-blockdev", R"({"driver":"nbd","server":{"type":"inet","host":"h","port":"10809"},"export":"e"})",
                     "-blockdev", R"({"driver":"rbd","pool":"p","image":"i","filename":"rbd:p/i"})"}),
              Paths{});
}

TEST(QemuCmdline, DuplicatesReturnedOnceInFirstSeenOrder) {
    EXPECT_EQ(paths({"-drive", "file=/images/a.img,if=none", "-blockdev", R"({"driver":"file","filename":"/images/b.img"})",
                     "-hda", "/images/a.img", "-blockdev",
                     R"({"driver":"raw","filename":"/images/b.img","file":{"filename":"/images/a.img"}})", "-cdrom",
                     "/images/c.iso",
                     // No normalisation: the lease is named after the literal string.
                     "-hdb", "/images//a.img"}),
              (Paths{"/images/a.img", "/images/b.img", "/images/c.iso", "/images//a.img"}));
}

TEST(QemuCmdline, MalformedJsonYieldsNothingForThatArgument) {
    const std::vector<std::string> malformed = {
        R"({"driver":"file","filename":"/images/x.img")",  // truncated
        R"({"driver":"file","filename":"/images/x)",       // truncated inside a string
        R"({"filename":"/images/x.img})",                  // unterminated string
        R"({"filename":"/images/x.img\)",                  // ends in a backslash
        std::string(10000, '{'),
        R"({"a":)" + std::string(10000, '['),
        nested_filename(10000),  // well formed, but deeper than qemu allows
        R"({"filename":"/images/x.img",})",
        R"({"filename":"/images/x.img"}x)",
        R"({"filename":"/images/x.img"}{"filename":"/images/y.img"})",
        R"({"filename" "/images/x.img"})",
        R"({"filename":"/images/x.img" "a":1})",
        R"({'filename':'/images/x.img'})",
        R"({filename:"/images/x.img"})",
        R"({"filename":"/images/\x.img"})",
        "{\"filename\":\"/images/\t.img\"}",  // raw control character
        R"({"filename":"/images/\u0000.img"})",
        R"({"filename":"/images/\ud83d.img"})",
        R"({"filename":"/images/\ude00.img"})",
        R"({"filename":"/images/\ud83d\u0041.img"})",
        R"({"filename":"/images/\u12"})",
        R"({"filename":"/images/\u12g4.img"})",
        R"({"a":[1},"filename":"/images/x.img"})",
        R"({"a":{"b":1],"filename":"/images/x.img"})",
        R"({"n":01,"filename":"/images/x.img"})",
        R"({"n":-,"filename":"/images/x.img"})",
        R"({"n":1.,"filename":"/images/x.img"})",
        R"({"n":1e,"filename":"/images/x.img"})",
        R"({"n":tru,"filename":"/images/x.img"})",
        R"({"n":nulls,"filename":"/images/x.img"})",
        R"({"n":,"filename":"/images/x.img"})",
        R"({)",
        R"({"filename":"/images/x.img"},)",
    };
    for (const std::string &doc : malformed) EXPECT_EQ(paths({"-blockdev", doc}), Paths{}) << doc;
    // A JSON array is not the JSON form, and has no key=value either.
    EXPECT_EQ(paths({"-blockdev", R"([{"filename":"/images/x.img"}])"}), Paths{});
    // A bad argument costs only its own paths.
    EXPECT_EQ(paths({"-blockdev", malformed[0], "-blockdev", R"({"filename":"/images/good.img"})"}),
              Paths{"/images/good.img"});
}

TEST(QemuCmdline, ModeratelyDeepJsonIsScanned) {
    EXPECT_EQ(paths({"-blockdev", nested_filename(100)}), Paths{"/images/deep.img"});
}

TEST(QemuCmdline, OverlongArgumentIgnored) {
    const std::string at_limit = "file=/" + std::string(kMaxQemuArgLength - 6, 'a');
    const std::string over_limit = "file=/" + std::string(kMaxQemuArgLength - 5, 'b');
    ASSERT_EQ(at_limit.size(), kMaxQemuArgLength);
    EXPECT_EQ(paths({"-drive", over_limit, "-hda", "/" + std::string(kMaxQemuArgLength, 'c'), "-drive", at_limit}),
              Paths{at_limit.substr(5)});
}

TEST(QemuCmdline, StopsAfterMaxPaths) {
    std::vector<std::string> argv{"qemu"};
    Paths expected;
    for (size_t i = 0; i < kMaxQemuDiskPaths + 44; ++i) {
        const std::string path = "/images/disk-" + std::to_string(i) + ".img";
        argv.insert(argv.end(), {"-hda", path});
        if (i < kMaxQemuDiskPaths) expected.push_back(path);
    }
    EXPECT_EQ(qemu_disk_paths(argv), expected);
}

TEST(QemuCmdline, OptionTakesTheNextArgumentWhateverItLooksLike) {
    EXPECT_EQ(paths({"-hda", "-drive", "file=/images/x.img"}), Paths{});
    EXPECT_EQ(paths({"-name", "guest=demo", "-drive"}), Paths{});  // no value at all
    EXPECT_EQ(qemu_disk_paths({"-hda", "/images/x.img"}), Paths{});  // argv[0] is the program
    EXPECT_EQ(qemu_disk_paths({}), Paths{});
}

TEST(QemuCmdline, SplitCmdline) {
    const Paths argv{"qemu", "-hda", "/images/a.img"};
    EXPECT_EQ(split_cmdline(bytes("qemu\0-hda\0/images/a.img\0")), argv);
    EXPECT_EQ(split_cmdline(bytes("qemu\0-hda\0/images/a.img")), argv);
    EXPECT_EQ(split_cmdline(""), Paths{});
    EXPECT_EQ(split_cmdline(bytes("\0")), Paths{""});
    EXPECT_EQ(split_cmdline(bytes("a\0\0b\0")), (Paths{"a", "", "b"}));
    EXPECT_EQ(split_cmdline(bytes("a\0\0")), (Paths{"a", ""}));
    EXPECT_EQ(qemu_disk_paths(split_cmdline(bytes("qemu\0-hda\0/images/a.img\0"))), Paths{"/images/a.img"});
}

TEST(QemuCmdline, RealisticLibvirt9CommandLine) {
    const std::vector<std::string> argv = {
        "/usr/bin/qemu-system-x86_64",
        "-name", "guest=demo,debug-threads=on",
        "-S",
        "-object", R"({"qom-type":"secret","id":"masterKey0","format":"raw",)"
                   R"("file":"/var/lib/libvirt/qemu/domain-1-demo/master-key.aes"})",
        "-blockdev", R"({"driver":"file","filename":"/usr/share/OVMF/OVMF_CODE_4M.fd",)"
                     R"("node-name":"libvirt-pflash0-storage","auto-read-only":true,"discard":"unmap"})",
        "-blockdev", R"({"node-name":"libvirt-pflash0-format","read-only":true,"driver":"raw",)"
                     R"("file":"libvirt-pflash0-storage"})",
        "-blockdev", R"({"driver":"file","filename":"/var/lib/libvirt/qemu/nvram/demo_VARS.fd",)"
                     R"("node-name":"libvirt-pflash1-storage","auto-read-only":true,"discard":"unmap"})",
        "-blockdev", R"({"node-name":"libvirt-pflash1-format","read-only":false,"driver":"raw",)"
                     R"("file":"libvirt-pflash1-storage"})",
        "-machine", "pc-q35-8.0,usb=off,vmport=off,smm=on,dump-guest-core=off,memory-backend=pc.ram,"
                    "pflash0=libvirt-pflash0-format,pflash1=libvirt-pflash1-format,hpet=off,acpi=on",
        "-accel", "kvm",
        "-cpu", "host,migratable=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-m", "size=2097152k",
        "-object", R"({"qom-type":"memory-backend-ram","id":"pc.ram","size":2147483648})",
        "-overcommit", "mem-lock=off",
        "-smp", "2,sockets=2,cores=1,threads=1",
        "-uuid", "3f1e5b9a-8c2d-4e7f-9a6b-1c2d3e4f5a6b",
        "-no-user-config",
        "-nodefaults",
        "-chardev", "socket,id=charmonitor,fd=32,server=on,wait=off",
        "-mon", "chardev=charmonitor,id=monitor,mode=control",
        "-rtc", "base=utc,driftfix=slew",
        "-global", "kvm-pit.lost_tick_policy=delay",
        "-no-shutdown",
        "-boot", "strict=on",
        "-device", R"({"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0",)"
                   R"("multifunction":true,"addr":"0x2"})",
        "-blockdev", R"({"driver":"file","filename":"/var/lib/libvirt/images/base.qcow2",)"
                     R"("node-name":"libvirt-3-storage","auto-read-only":true,"discard":"unmap"})",
        "-blockdev", R"({"node-name":"libvirt-3-format","read-only":true,"driver":"qcow2",)"
                     R"("file":"libvirt-3-storage","backing":null})",
        "-blockdev", R"({"driver":"file","filename":"/var/lib/libvirt/images/demo.qcow2",)"
                     R"("node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"})",
        "-blockdev", R"({"node-name":"libvirt-2-format","read-only":false,"discard":"unmap","driver":"qcow2",)"
                     R"("file":"libvirt-2-storage","backing":"libvirt-3-format"})",
        "-device", R"({"driver":"virtio-blk-pci","bus":"pci.4","addr":"0x0","drive":"libvirt-2-format",)"
                   R"("id":"virtio-disk0","bootindex":1})",
        "-blockdev", R"({"driver":"host_device","filename":"/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-)"
                     R"(iqn.2026-01.example:db-lun-1","node-name":"libvirt-1-storage",)"
                     R"("cache":{"direct":true,"no-flush":false},"auto-read-only":true,"discard":"unmap"})",
        "-blockdev", R"({"node-name":"libvirt-1-format","read-only":false,"cache":{"direct":true,"no-flush":false},)"
                     R"("driver":"raw","file":"libvirt-1-storage"})",
        "-device", "virtio-blk-pci,bus=pci.5,addr=0x0,drive=libvirt-1-format,id=virtio-disk1,write-cache=on",
        "-blockdev", R"({"driver":"file","filename":"/var/lib/libvirt/images/install.iso",)"
                     R"("node-name":"libvirt-4-storage","read-only":true})",
        "-blockdev", R"({"node-name":"libvirt-4-format","read-only":true,"driver":"raw","file":"libvirt-4-storage"})",
        "-device", R"({"driver":"ide-cd","bus":"ide.0","drive":"libvirt-4-format","id":"sata0-0-0"})",
        "-netdev", R"({"type":"tap","fd":"35","vhost":true,"vhostfd":"37","id":"hostnet0"})",
        "-device", R"({"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:12:34:56",)"
                   R"("bus":"pci.1","addr":"0x0"})",
        "-chardev", "pty,id=charserial0",
        "-audiodev", R"({"id":"audio1","driver":"none"})",
        "-vnc", "127.0.0.1:0,audiodev=audio1",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-msg", "timestamp=on",
    };
    EXPECT_EQ(qemu_disk_paths(argv),
              (Paths{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/var/lib/libvirt/qemu/nvram/demo_VARS.fd",
                     "/var/lib/libvirt/images/base.qcow2", "/var/lib/libvirt/images/demo.qcow2",
                     "/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1",
                     "/var/lib/libvirt/images/install.iso"}));
}
