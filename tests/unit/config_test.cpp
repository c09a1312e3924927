// Unit tests for agent/config.cpp: parsing, validation, error positions and
// drop-in merging of vmlease.yaml.
#include "config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace vmlease {
namespace {

namespace fs = std::filesystem;

// The error text of parsing `yaml`, or "" (plus a test failure) if it parsed.
std::string error_of(const std::string &yaml) {
    try {
        parse_config(yaml, "t.yaml");
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
    return "";
}

std::string load_error_of(const std::string &path) {
    try {
        load_config(path);
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError loading " << path;
    return "";
}

#define EXPECT_STARTS_WITH(text, prefix)                                   \
    do {                                                                   \
        const std::string text_ = (text);                                  \
        EXPECT_TRUE(text_.starts_with(prefix)) << "actual: " << text_;     \
    } while (0)

// A private directory under $TMPDIR, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "vmlease-config-test.XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    std::string write(const std::string &relative, const std::string &text) const {
        fs::path p = path_ / relative;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p.string();
    }
    std::string path(const std::string &relative) const { return (path_ / relative).string(); }

private:
    fs::path path_;
};

// ---------------------------------------------------------------------------
// Valid files

TEST(ConfigParse, FullFileWithEveryKey) {
    Config c = parse_config(R"(host_id: 42
lease_dir: /srv/leases
lockspace: MY_SPACE
io_timeout: 20
auto_disk_leases: false
on_conflict: warn
on_lockfailure: pause
lease_file_user: sanlock
lease_file_group: disk
lockfailure_helper: /usr/libexec/vmlease-lockfailure
discovery:
  open_files: false
  include: ["/srv/images/*"]
  exclude: ["/srv/images/scratch-*", "/dev/disk/by-path/*-part*"]
machines:
  - match: "db-*"
    disks:
      - {path: /dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1, mode: exclusive}
      - path: /srv/images/shared.img
        mode: shared
      - path: /srv/images/iso.img
        mode: none
      - path: /srv/images/default.img
      - {path: /dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:1:0, identity: path}
      - {path: /srv/images/auto.img, identity: auto}
    on_lockfailure: restart
    on_conflict: terminate
  - match: web
    disks: []
)",
                            "full.yaml");
    EXPECT_EQ(c.host_id, 42u);
    EXPECT_EQ(c.lease_dir, "/srv/leases");
    EXPECT_EQ(c.lockspace, "MY_SPACE");
    EXPECT_EQ(c.io_timeout, 20u);
    EXPECT_FALSE(c.auto_disk_leases);
    EXPECT_EQ(c.on_conflict, ConflictAction::Warn);
    EXPECT_EQ(c.on_lockfailure, LockFailureAction::Pause);
    EXPECT_EQ(c.lease_file_user, "sanlock");
    EXPECT_EQ(c.lease_file_group, "disk");
    EXPECT_EQ(c.lockfailure_helper, "/usr/libexec/vmlease-lockfailure");
    EXPECT_FALSE(c.discovery.open_files);
    EXPECT_EQ(c.discovery.include, std::vector<std::string>{"/srv/images/*"});
    EXPECT_EQ(c.discovery.exclude,
              (std::vector<std::string>{"/srv/images/scratch-*", "/dev/disk/by-path/*-part*"}));
    ASSERT_EQ(c.machines.size(), 2u);
    const MachineRule &db = c.machines[0];
    EXPECT_EQ(db.match, "db-*");
    ASSERT_EQ(db.disks.size(), 6u);
    EXPECT_EQ(db.disks[0].path, "/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1");
    EXPECT_EQ(db.disks[0].mode, LeaseMode::Exclusive);
    EXPECT_EQ(db.disks[1].mode, LeaseMode::Shared);
    EXPECT_EQ(db.disks[2].mode, LeaseMode::None);
    EXPECT_EQ(db.disks[3].mode, LeaseMode::Exclusive);  // the default
    EXPECT_FALSE(db.disks[3].identity_is_path);          // the default
    EXPECT_TRUE(db.disks[4].identity_is_path);
    EXPECT_FALSE(db.disks[5].identity_is_path);
    EXPECT_EQ(db.on_lockfailure, LockFailureAction::Restart);
    EXPECT_EQ(db.on_conflict, ConflictAction::Terminate);
    EXPECT_EQ(c.machines[1].match, "web");
    EXPECT_TRUE(c.machines[1].disks.empty());
    EXPECT_FALSE(c.machines[1].on_lockfailure.has_value());
    EXPECT_FALSE(c.machines[1].on_conflict.has_value());
    EXPECT_EQ(c.sources, std::vector<std::string>{"full.yaml"});
}

TEST(ConfigParse, DefaultsWhenOnlyHostIdIsGiven) {
    Config c = parse_config("host_id: 1\n", "t.yaml");
    EXPECT_EQ(c.host_id, 1u);
    EXPECT_EQ(c.lease_dir, "/var/lib/vmlease/leases");
    EXPECT_EQ(c.lockspace, "__LIBVIRT__DISKS__");
    EXPECT_EQ(c.io_timeout, 10u);
    EXPECT_TRUE(c.auto_disk_leases);
    EXPECT_EQ(c.on_conflict, ConflictAction::Terminate);
    EXPECT_EQ(c.on_lockfailure, LockFailureAction::Poweroff);
    // Unset: vmleased follows sanlock's own default user (see lease-api).
    EXPECT_EQ(c.lease_file_user, "");
    EXPECT_EQ(c.lease_file_group, "");
    EXPECT_EQ(c.lockfailure_helper, "");
    EXPECT_TRUE(c.discovery.open_files);
    // As the man page and the shipped file say (not compared with Config's own default).
    EXPECT_EQ(c.discovery.include,
              (std::vector<std::string>{"/var/lib/libvirt/images/*", "/dev/disk/by-path/*"}));
    EXPECT_TRUE(c.discovery.exclude.empty());
    EXPECT_TRUE(c.machines.empty());
}

TEST(ConfigParse, BoundsAreInclusive) {
    EXPECT_EQ(parse_config("host_id: 1", "t").host_id, 1u);
    EXPECT_EQ(parse_config("host_id: 2000", "t").host_id, 2000u);
    EXPECT_EQ(parse_config("host_id: 1\nio_timeout: 1", "t").io_timeout, 1u);
    EXPECT_EQ(parse_config("host_id: 1\nio_timeout: 300", "t").io_timeout, 300u);
    EXPECT_EQ(parse_config("host_id: !!int 5", "t").host_id, 5u);
}

TEST(ConfigParse, LeaseMaxHostsBoundsTheSlotsOfNewLeaseFiles) {
    EXPECT_EQ(parse_config("host_id: 1", "t").lease_max_hosts, 0u) << "unset: sanlock's default";
    EXPECT_EQ(parse_config("host_id: 1\nlease_max_hosts: 1", "t").lease_max_hosts, 1u);
    EXPECT_EQ(parse_config("host_id: 64\nlease_max_hosts: 64", "t").lease_max_hosts, 64u);
    EXPECT_EQ(parse_config("host_id: 1\nlease_max_hosts: 2000", "t").lease_max_hosts, 2000u);
    EXPECT_NE(error_of("host_id: 1\nlease_max_hosts: 0").find("lease_max_hosts"), std::string::npos);
    EXPECT_NE(error_of("host_id: 1\nlease_max_hosts: 2001").find("lease_max_hosts"), std::string::npos);
    // This host could never take a lease in a file with fewer slots than its id.
    std::string e = error_of("host_id: 65\nlease_max_hosts: 64");
    EXPECT_NE(e.find("host_id 65 is above lease_max_hosts 64"), std::string::npos) << e;
}

TEST(ConfigParse, CoreSchemaBooleans) {
    for (const char *yes : {"true", "True", "TRUE"})
        EXPECT_TRUE(parse_config(std::string("host_id: 1\nauto_disk_leases: ") + yes, "t").auto_disk_leases);
    for (const char *no : {"false", "False", "FALSE"})
        EXPECT_FALSE(parse_config(std::string("host_id: 1\nauto_disk_leases: ") + no, "t").auto_disk_leases);
}

TEST(ConfigParse, AnyScalarIsAString) {
    Config c = parse_config("host_id: 1\nlease_file_user: 1000\nlease_file_group: \"disk\"\n", "t");
    EXPECT_EQ(c.lease_file_user, "1000");
    EXPECT_EQ(c.lease_file_group, "disk");
}

// ---------------------------------------------------------------------------
// Enums

TEST(ConfigEnums, LeaseModesRoundTripAndParse) {
    for (LeaseMode m : {LeaseMode::Exclusive, LeaseMode::Shared, LeaseMode::None}) {
        EXPECT_EQ(lease_mode_from_string(to_string(m)), m);
        Config c = parse_config(std::string("host_id: 1\nmachines:\n  - match: x\n    disks:\n      - path: /d\n"
                                            "        mode: ") +
                                    to_string(m),
                                "t");
        EXPECT_EQ(c.machines.at(0).disks.at(0).mode, m);
    }
    EXPECT_STREQ(to_string(LeaseMode::Exclusive), "exclusive");
    EXPECT_STREQ(to_string(LeaseMode::Shared), "shared");
    EXPECT_STREQ(to_string(LeaseMode::None), "none");
    EXPECT_EQ(lease_mode_from_string("Exclusive"), std::nullopt);
    EXPECT_EQ(lease_mode_from_string(""), std::nullopt);
}

TEST(ConfigEnums, ConflictActionsRoundTripAndParse) {
    for (ConflictAction a : {ConflictAction::Terminate, ConflictAction::Warn}) {
        EXPECT_EQ(conflict_action_from_string(to_string(a)), a);
        EXPECT_EQ(parse_config(std::string("host_id: 1\non_conflict: ") + to_string(a), "t").on_conflict, a);
        Config c = parse_config(std::string("host_id: 1\nmachines: [{match: x, disks: [], on_conflict: ") +
                                    to_string(a) + "}]",
                                "t");
        EXPECT_EQ(c.machines.at(0).on_conflict, a);
    }
    EXPECT_STREQ(to_string(ConflictAction::Terminate), "terminate");
    EXPECT_STREQ(to_string(ConflictAction::Warn), "warn");
    EXPECT_EQ(conflict_action_from_string("ignore"), std::nullopt);
}

TEST(ConfigEnums, LockFailureActionsRoundTripAndParse) {
    for (LockFailureAction a : {LockFailureAction::Poweroff, LockFailureAction::Terminate, LockFailureAction::Pause,
                                LockFailureAction::Ignore, LockFailureAction::Restart}) {
        EXPECT_EQ(lock_failure_action_from_string(to_string(a)), a);
        EXPECT_EQ(parse_config(std::string("host_id: 1\non_lockfailure: ") + to_string(a), "t").on_lockfailure, a);
        Config c = parse_config(std::string("host_id: 1\nmachines: [{match: x, disks: [], on_lockfailure: ") +
                                    to_string(a) + "}]",
                                "t");
        EXPECT_EQ(c.machines.at(0).on_lockfailure, a);
    }
    EXPECT_STREQ(to_string(LockFailureAction::Poweroff), "poweroff");
    EXPECT_STREQ(to_string(LockFailureAction::Terminate), "terminate");
    EXPECT_STREQ(to_string(LockFailureAction::Pause), "pause");
    EXPECT_STREQ(to_string(LockFailureAction::Ignore), "ignore");
    EXPECT_STREQ(to_string(LockFailureAction::Restart), "restart");
    EXPECT_EQ(lock_failure_action_from_string("warn"), std::nullopt);
}

TEST(ConfigEnums, BadEnumValuesNameTheChoices) {
    EXPECT_EQ(error_of("host_id: 1\non_conflict: kill\n"),
              "t.yaml:2:14: on_conflict: expected one of terminate, warn, pause, got \"kill\"");
    EXPECT_EQ(error_of("host_id: 1\non_lockfailure: reboot\n"),
              "t.yaml:2:17: on_lockfailure: expected one of poweroff, terminate, pause, ignore, restart, "
              "got \"reboot\"");
    EXPECT_EQ(error_of("host_id: 1\n"
                       "machines:\n"
                       "  - match: a\n"
                       "    disks: []\n"
                       "  - match: b\n"
                       "    disks:\n"
                       "      - {path: /d, mode: rw}\n"),
              "t.yaml:7:26: machines[1].disks[0].mode: expected one of exclusive, shared, none, got \"rw\"");
}

// ---------------------------------------------------------------------------
// host_id and other integers

TEST(ConfigErrors, HostIdZero) {
    EXPECT_EQ(error_of("host_id: 0\n"), "t.yaml:1:10: host_id: must be in 1..2000, got 0");
}

TEST(ConfigErrors, HostIdTooLarge) {
    EXPECT_EQ(error_of("host_id: 2001\n"), "t.yaml:1:10: host_id: must be in 1..2000, got 2001");
    EXPECT_EQ(error_of("host_id: 99999999999999999999999\n"),
              "t.yaml:1:10: host_id: must be in 1..2000, got 99999999999999999999999");
}

TEST(ConfigErrors, HostIdNotANumber) {
    EXPECT_EQ(error_of("host_id: abc\n"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got \"abc\"");
}

TEST(ConfigErrors, HostIdMissing) {
    EXPECT_EQ(error_of("lease_dir: /srv\n"), "t.yaml:1:1: host_id is required");
}

TEST(ConfigErrors, EmptyFileNeedsHostId) {
    EXPECT_EQ(error_of(""), "t.yaml:1:1: host_id is required");
    EXPECT_EQ(error_of("# only a comment\n"), "t.yaml:1:1: host_id is required");
}

TEST(ConfigErrors, IntegersAreStrict) {
    EXPECT_EQ(error_of("host_id: -1"), "t.yaml:1:10: host_id: must be in 1..2000, got -1");
    EXPECT_EQ(error_of("host_id: 1e3"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got \"1e3\"");
    EXPECT_EQ(error_of("host_id: 1.0"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got \"1.0\"");
    EXPECT_EQ(error_of("host_id: 0x10"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got \"0x10\"");
    EXPECT_EQ(error_of("host_id: 010"),
              "t.yaml:1:10: host_id: leading zeros are ambiguous (octal in YAML 1.1), got \"010\"");
    EXPECT_EQ(error_of("host_id: \"5\""),
              "t.yaml:1:10: host_id: expected an integer in 1..2000, got quoted string \"5\"");
    EXPECT_EQ(error_of("host_id: [1]"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got a sequence");
    EXPECT_EQ(error_of("host_id: {a: 1}"), "t.yaml:1:10: host_id: expected an integer in 1..2000, got a mapping");
    EXPECT_EQ(error_of("host_id: 1\nio_timeout: 0"), "t.yaml:2:13: io_timeout: must be in 1..300, got 0");
    EXPECT_EQ(error_of("host_id: 1\nio_timeout: 301"), "t.yaml:2:13: io_timeout: must be in 1..300, got 301");
}

TEST(ConfigErrors, EmptyValueIsReportedAtItsKey) {
    // yaml-cpp puts an empty value's mark on the next token (line 3 here).
    EXPECT_EQ(error_of("host_id: 1\nio_timeout:\nlockspace: x\n"),
              "t.yaml:2:1: io_timeout: expected an integer in 1..300, got null");
    EXPECT_EQ(error_of("host_id: 1\nio_timeout:"), "t.yaml:2:1: io_timeout: expected an integer in 1..300, got null");
    EXPECT_EQ(error_of("host_id: 1\nio_timeout: ~"), "t.yaml:2:13: io_timeout: expected an integer in 1..300, got null");
}

TEST(ConfigErrors, BooleansAreStrict) {
    EXPECT_EQ(error_of("host_id: 1\nauto_disk_leases: yes please"),
              "t.yaml:2:19: auto_disk_leases: expected true or false, got \"yes please\"");
    EXPECT_EQ(error_of("host_id: 1\nauto_disk_leases: yes"),
              "t.yaml:2:19: auto_disk_leases: expected true or false, got \"yes\"");
    EXPECT_EQ(error_of("host_id: 1\nauto_disk_leases: \"true\""),
              "t.yaml:2:19: auto_disk_leases: expected true or false, got quoted string \"true\"");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery: {open_files: 1}"),
              "t.yaml:2:25: discovery.open_files: expected true or false, got \"1\"");
}

TEST(ConfigErrors, StringsAreScalars) {
    EXPECT_EQ(error_of("host_id: 1\nlease_file_user: [root]"),
              "t.yaml:2:18: lease_file_user: expected a string, got a sequence");
    EXPECT_EQ(error_of("host_id: 1\nlease_file_group: \"\""), "t.yaml:2:19: lease_file_group: must not be empty");
    EXPECT_EQ(error_of("host_id: 1\nlease_file_group: ~"),
              "t.yaml:2:19: lease_file_group: expected a string, got null");
    EXPECT_EQ(error_of("host_id: 1\nlease_file_user: \"ro\\0ot\""),
              "t.yaml:2:18: lease_file_user: must not contain a NUL character");
}

// ---------------------------------------------------------------------------
// Unknown and duplicate keys, structure

TEST(ConfigErrors, UnknownTopLevelKey) {
    EXPECT_EQ(error_of("host_id: 1\nhostid: 2\n"),
              "t.yaml:2:1: hostid: unknown key (expected one of host_id, lease_dir, lockspace, io_timeout, "
              "lease_max_hosts, auto_disk_leases, on_conflict, on_lockfailure, on_unprotected, unprotected_grace, "
              "resume_after_lockfailure, lease_file_user, lease_file_group, "
              "lockfailure_helper, lease_holder, discovery, machines, cleanup_min_age)");
}

TEST(ConfigErrors, UnknownKeyInADisk) {
    EXPECT_EQ(error_of("host_id: 1\n"
                       "machines:\n"
                       "  - match: \"db-*\"\n"
                       "    disks:\n"
                       "      - path: /dev/sda\n"
                       "        size: 10\n"),
              "t.yaml:6:9: machines[0].disks[0].size: unknown key (expected one of path, mode, identity)");
}

TEST(ConfigErrors, UnknownKeyInDiscoveryAndMachine) {
    EXPECT_EQ(error_of("host_id: 1\ndiscovery:\n  open_file: true\n"),
              "t.yaml:3:3: discovery.open_file: unknown key (expected one of open_files, include, exclude)");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: a\n    disks: []\n    on_failure: pause\n"),
              "t.yaml:5:5: machines[0].on_failure: unknown key (expected one of match, disks, on_lockfailure, "
              "on_conflict, on_unprotected, unprotected_grace, resume_after_lockfailure)");
}

TEST(ConfigErrors, DuplicateKeys) {
    EXPECT_EQ(error_of("host_id: 1\nlockspace: a\nhost_id: 2\n"),
              "t.yaml:3:1: host_id: duplicate key (first given at line 1 column 1)");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - {match: a, match: b, disks: []}\n"),
              "t.yaml:3:16: machines[0].match: duplicate key (first given at line 3 column 6)");
}

TEST(ConfigErrors, MissingRequiredNestedKeys) {
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - disks: []\n"),
              "t.yaml:3:5: machines[0]: missing required key \"match\"");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: a\n"),
              "t.yaml:3:5: machines[0]: missing required key \"disks\"");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: a\n    disks:\n      - mode: shared\n"),
              "t.yaml:5:9: machines[0].disks[0]: missing required key \"path\"");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: \"\"\n    disks: []\n"),
              "t.yaml:3:12: machines[0].match: must not be empty");
}

TEST(ConfigErrors, WrongContainerTypes) {
    EXPECT_EQ(error_of("- host_id: 1\n"), "t.yaml:1:1: expected a mapping at the top level, got a sequence");
    EXPECT_EQ(error_of("host_id: 1\nmachines: {match: a}\n"),
              "t.yaml:2:11: machines: expected a sequence, got a mapping");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery: [a]\n"), "t.yaml:2:12: discovery: expected a mapping, got a sequence");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery:\n"), "t.yaml:2:1: discovery: expected a mapping, got null");
    EXPECT_EQ(error_of("host_id: 1\nmachines: [a]\n"), "t.yaml:2:12: machines[0]: expected a mapping, got \"a\"");
    EXPECT_EQ(error_of("host_id: 1\n[a]: 2\n"), "t.yaml:2:1: expected a string key, got a sequence");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery: {[a]: 2}\n"),
              "t.yaml:2:13: discovery: expected a string key, got a sequence");
}

TEST(ConfigErrors, DuplicateDiskInARule) {
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: a\n    disks:\n      - path: /d\n      - {path: /d, mode: shared}\n"),
              "t.yaml:6:9: machines[0].disks[1]: duplicate disk \"/d\"");
}

TEST(ConfigErrors, OnlyOneDocument) {
    EXPECT_EQ(error_of("host_id: 1\n---\nhost_id: 2\n"), "t.yaml:3:1: only one YAML document is allowed");
}

TEST(ConfigErrors, YamlSyntaxError) {
    EXPECT_EQ(error_of("host_id: 1\nlease_dir: [/srv\nlockspace: x\n"),
              "t.yaml:3:10: YAML syntax error: end of sequence flow not found");
    EXPECT_EQ(error_of("host_id: 1\nmachines:\n  - match: a\n   disks: []\n"),
              "t.yaml:4:4: YAML syntax error: end of sequence not found");
}

// ---------------------------------------------------------------------------
// Paths and names

TEST(ConfigPaths, RelativeLeaseDirIsAnError) {
    EXPECT_EQ(error_of("host_id: 1\nlease_dir: leases\n"),
              "t.yaml:2:12: lease_dir: expected an absolute path, got \"leases\"");
    EXPECT_EQ(error_of("host_id: 1\nlease_dir: \"\"\n"), "t.yaml:2:12: lease_dir: expected an absolute path, got \"\"");
}

TEST(ConfigPaths, LeaseDirIsNormalised) {
    EXPECT_EQ(parse_config("host_id: 1\nlease_dir: /a//b/\n", "t").lease_dir, "/a/b");
    EXPECT_EQ(parse_config("host_id: 1\nlease_dir: /a/./b//./\n", "t").lease_dir, "/a/b");
    EXPECT_EQ(parse_config("host_id: 1\nlease_dir: //\n", "t").lease_dir, "/");
    // ".." is kept: resolving it lexically would be wrong across symlinks.
    EXPECT_EQ(parse_config("host_id: 1\nlease_dir: /a/../b/\n", "t").lease_dir, "/a/../b");
}

TEST(ConfigPaths, OtherPathsMustBeAbsolute) {
    EXPECT_EQ(error_of("host_id: 1\nlockfailure_helper: ./helper\n"),
              "t.yaml:2:21: lockfailure_helper: expected an absolute path, got \"./helper\"");
    EXPECT_EQ(error_of("host_id: 1\nmachines: [{match: a, disks: [{path: sda}]}]\n"),
              "t.yaml:2:38: machines[0].disks[0].path: expected an absolute path, got \"sda\"");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery:\n  include: [\"/ok/*\", \"*.img\"]\n"),
              "t.yaml:3:22: discovery.include[1]: expected an absolute glob, got \"*.img\"");
    EXPECT_EQ(error_of("host_id: 1\ndiscovery:\n  exclude:\n    - tmp/*\n"),
              "t.yaml:4:7: discovery.exclude[0]: expected an absolute glob, got \"tmp/*\"");
}

TEST(ConfigNames, LockspaceLength) {
    std::string max(47, 'L');
    EXPECT_EQ(parse_config("host_id: 1\nlockspace: " + max + "\n", "t").lockspace, max);
    EXPECT_EQ(error_of("host_id: 1\nlockspace: " + max + "X\n"), "t.yaml:2:12: lockspace: must be 1..47 bytes, got 48");
    EXPECT_EQ(error_of("host_id: 1\nlockspace: \"\"\n"), "t.yaml:2:12: lockspace: must be 1..47 bytes, got 0");
}

TEST(ConfigNames, LockspaceCharacters) {
    EXPECT_EQ(error_of("host_id: 1\nlockspace: a/b\n"),
              "t.yaml:2:12: lockspace: must not contain '/' or whitespace, got \"a/b\"");
    EXPECT_EQ(error_of("host_id: 1\nlockspace: \"a b\"\n"),
              "t.yaml:2:12: lockspace: must not contain '/' or whitespace, got \"a b\"");
    EXPECT_EQ(error_of("host_id: 1\nlockspace: \"a\\tb\"\n"),
              "t.yaml:2:12: lockspace: must not contain '/' or whitespace, got \"a\\x09b\"");
    EXPECT_EQ(error_of("host_id: 1\nlockspace: \"a\\0b\"\n"),
              "t.yaml:2:12: lockspace: must not contain a NUL character");
    EXPECT_EQ(error_of("host_id: 1\nlockspace: ..\n"), "t.yaml:2:12: lockspace: must be a file name, got \"..\"");
}

// ---------------------------------------------------------------------------
// Files and drop-ins

TEST(ConfigLoad, MainFileOnly) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", "host_id: 3\n");
    Config c = load_config(main);
    EXPECT_EQ(c.host_id, 3u);
    EXPECT_EQ(c.sources, std::vector<std::string>{main});
}

TEST(ConfigLoad, MissingFile) {
    TempDir dir;
    std::string missing = dir.path("nope.yaml");
    EXPECT_EQ(load_error_of(missing), missing + ": cannot read: No such file or directory");
}

TEST(ConfigLoad, DirectoryIsNotAFile) {
    TempDir dir;
    std::string sub = dir.write("sub/x", "");
    std::string parent = fs::path(sub).parent_path().string();
    EXPECT_EQ(load_error_of(parent), parent + ": cannot read: Is a directory");
}

TEST(ConfigLoad, DropInReplacesTopLevelKeys) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", R"(host_id: 3
lockspace: MAIN
io_timeout: 20
discovery:
  open_files: false
  exclude: ["/x/*"]
machines:
  - {match: a, disks: []}
  - {match: b, disks: []}
)");
    std::string d10 = dir.write("vmlease.d/10-x.yaml", R"(host_id: 7
discovery:
  include: ["/only/*"]
machines:
  - {match: c, disks: []}
)");
    std::string d20 = dir.write("vmlease.d/20-y.yaml", "host_id: 9\n");
    dir.write("vmlease.d/30-ignored.yml", "garbage: [");
    dir.write("vmlease.d/.40-hidden.yaml", "garbage: [");
    dir.write("vmlease.d/README", "garbage: [");

    Config c = load_config(main);
    EXPECT_EQ(c.host_id, 9u);  // 20-y wins over 10-x: lexical order
    EXPECT_EQ(c.lockspace, "MAIN");
    EXPECT_EQ(c.io_timeout, 20u);
    // discovery is replaced as a whole: open_files and exclude revert to defaults.
    EXPECT_TRUE(c.discovery.open_files);
    EXPECT_EQ(c.discovery.include, std::vector<std::string>{"/only/*"});
    EXPECT_TRUE(c.discovery.exclude.empty());
    // lists replace, they are not appended
    ASSERT_EQ(c.machines.size(), 1u);
    EXPECT_EQ(c.machines[0].match, "c");
    EXPECT_EQ(c.sources, (std::vector<std::string>{main, d10, d20}));
}

TEST(ConfigLoad, HostIdMayComeFromADropIn) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", "");
    dir.write("vmlease.d/host.yaml", "host_id: 12\n");
    EXPECT_EQ(load_config(main).host_id, 12u);
}

TEST(ConfigLoad, HostIdMissingEverywhere) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", "lockspace: x\n");
    dir.write("vmlease.d/10-x.yaml", "io_timeout: 5\n");
    EXPECT_EQ(load_error_of(main), main + ":1:1: host_id is required");
}

TEST(ConfigLoad, ErrorInADropInNamesTheDropIn) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", "host_id: 3\n");
    dir.write("vmlease.d/10-ok.yaml", "io_timeout: 5\n");
    std::string bad = dir.write("vmlease.d/20-bad.yaml", "# comment\nmachines:\n  - match: a\n    disk: []\n");
    EXPECT_EQ(load_error_of(main),
              bad + ":4:5: machines[0].disk: unknown key (expected one of match, disks, on_lockfailure, on_conflict, on_unprotected, "
                           "unprotected_grace, resume_after_lockfailure)");
}

TEST(ConfigLoad, SyntaxErrorInADropInNamesTheDropIn) {
    TempDir dir;
    std::string main = dir.write("vmlease.yaml", "host_id: 3\n");
    std::string bad = dir.write("vmlease.d/10-bad.yaml", "lockspace: [x\n");
    EXPECT_STARTS_WITH(load_error_of(main), bad + ":2:1: YAML syntax error: ");
}

TEST(ConfigCleanup, MinimumAgeDefaultsToAnHourAndIsBounded) {
    EXPECT_EQ(parse_config("host_id: 1\n", "t.yaml").cleanup_min_age, 3600u);
    EXPECT_EQ(parse_config("host_id: 1\ncleanup_min_age: 5\n", "t.yaml").cleanup_min_age, 5u);
    EXPECT_EQ(error_of("host_id: 1\ncleanup_min_age: -1\n").rfind("t.yaml:2:18: cleanup_min_age:", 0), 0u);
}

}  // namespace
}  // namespace vmlease

TEST(ConfigUnprotected, DefaultsFailClosedAndRulesOverride) {
    using namespace vmlease;
    Config c = parse_config("host_id: 1\n", "t.yaml");
    EXPECT_EQ(c.on_unprotected, UnprotectedAction::Terminate);
    EXPECT_EQ(c.unprotected_grace, 60u);
    c = parse_config("host_id: 1\non_unprotected: pause\nunprotected_grace: 5\non_conflict: pause\n"
                     "machines:\n  - match: a\n    disks: []\n    on_unprotected: warn\n    unprotected_grace: 0\n",
                     "t.yaml");
    EXPECT_EQ(c.on_unprotected, UnprotectedAction::Pause);
    EXPECT_EQ(c.unprotected_grace, 5u);
    EXPECT_EQ(c.on_conflict, ConflictAction::Pause);
    ASSERT_EQ(c.machines.size(), 1u);
    EXPECT_EQ(c.machines[0].on_unprotected, UnprotectedAction::Warn);
    EXPECT_EQ(c.machines[0].unprotected_grace, 0u);
    try {
        parse_config("host_id: 1\non_unprotected: ignore\n", "t.yaml");
        FAIL() << "accepted";
    } catch (const ConfigError &e) {
        EXPECT_STREQ(e.what(), "t.yaml:2:17: on_unprotected: expected one of terminate, pause, warn, got \"ignore\"");
    }
}
