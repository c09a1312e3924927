// vmleasectl against a running agent: a real dbus-daemon, a real sanlock
// daemon and the real vmleased. Every verb, its text (table) and JSON output,
// and the exit codes 0 (ok), 1 (failure), 2 (usage), 4 (no such object).
// The binary under test is $VMLEASECTL.
#include "host.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <optional>
#include <sstream>

using namespace vmtest;
using nlohmann::json;

namespace {

const std::string kDisk = "/var/lib/libvirt/images/demo.img";
const std::string kResource = "bfa0240911bc17753e0b473688822159";
const std::string kLease = "/org/vmlease/lease/" + kResource;
const std::string kSharedDisk = "/srv/shared/cluster.img";

struct CtlResult {
    int status = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

std::ostream &operator<<(std::ostream &os, const CtlResult &r) {
    return os << "exit " << r.status << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err;
}

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

std::vector<std::string> words_of(const std::string &line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

json parse_json(const std::string &text) {
    try {
        return json::parse(text);
    } catch (const std::exception &e) {
        ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << text;
        return json();
    }
}

// "Label: value" lines of status/inspect, keyed by label.
std::map<std::string, std::string> fields_of(const std::string &text) {
    std::map<std::string, std::string> out;
    for (const auto &line : lines_of(text)) {
        auto colon = line.find(": ");
        if (colon == std::string::npos)
            continue;
        auto first = line.find_first_not_of(' ');
        out[line.substr(first, colon - first)] = line.substr(colon + 2);
    }
    return out;
}

class Vmleasectl : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        site = std::make_unique<Site>("vmlease-ctl");
        HostOptions o;
        o.extra_yaml = "cleanup_min_age: 0\n";  // CleanupReportsHonestly
        host = std::make_unique<Host>(site->root.path(), site->lease_dir(), 1, o);
        ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();
    }
    static void TearDownTestSuite() {
        host.reset();
        site.reset();
    }
    void TearDown() override {
        // Leave no lease behind for the next test.
        for (const auto &l : host->client->ListLeases())
            host->client->ReleaseDisk(l.get<2>(), l.get<0>());
        if (host)
            host->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << host->agent->log() << std::endl;
    }

    // Runs vmleasectl ARGS in `cwd` against the host's bus; stdin is /dev/null
    // and stdout no terminal, so there is no pager, agent or color.
    static CtlResult ctl(const std::vector<std::string> &args, const std::string &cwd = "/",
                         std::map<std::string, std::string> env = {}) {
        TempDir tmp("vmleasectl-run");
        std::vector<std::string> argv{"/bin/sh", "-c", "cd \"$CTL_CWD\" && exec \"$@\" 2>\"$CTL_ERR\"", "sh",
                                      required_env("VMLEASECTL")};
        argv.insert(argv.end(), args.begin(), args.end());
        env.emplace("DBUS_SYSTEM_BUS_ADDRESS", host->bus_address);
        env["CTL_CWD"] = cwd;
        env["CTL_ERR"] = tmp / "err";
        CtlResult r;
        r.status = run(argv, env, &r.out, 60s);
        r.err = read_file(tmp / "err");
        // Under ASan a leak turns exit status 0 into 1, but not an expected
        // failure's 1 into anything else: look for the report itself.
        EXPECT_EQ(sanitizer_report(r.err), "") << r;
        return r;
    }
    // Runs vmleasectl ARGS with stdout on a terminal (script(1)'s), so that it
    // starts a pager; stderr goes to the same terminal, and all of it to `out`.
    // The pager variables are unset, then `env` is set. It runs in a cgroup
    // namespace of its own, which puts it in no login session whatever session
    // runs the tests: sd_pid_get_owner_uid() fails as for a service or cron job.
    static CtlResult ctl_on_terminal(const std::vector<std::string> &args,
                                     const std::map<std::string, std::string> &env) {
        std::string cmd = "unset SYSTEMD_PAGER PAGER VMLEASE_PAGERSECURE SYSTEMD_PAGERSECURE LESSSECURE LESS;";
        for (const auto &[name, value] : env)
            cmd += " export " + name + "='" + value + "';";
        cmd += " exec /usr/bin/unshare --cgroup \"$VMLEASECTL\"";
        for (const auto &a : args)
            cmd += " '" + a + "'";
        CtlResult r;
        r.status = run({"/usr/bin/script", "--quiet", "--return", "--command", cmd, "/dev/null"},
                       {{"DBUS_SYSTEM_BUS_ADDRESS", host->bus_address}, {"SHELL", "/bin/sh"}}, &r.out, 60s);
        return r;
    }
    static json ctl_json(const std::vector<std::string> &args) {
        std::vector<std::string> a{"--json=short"};
        a.insert(a.end(), args.begin(), args.end());
        CtlResult r = ctl(a);
        EXPECT_EQ(r.status, 0) << r;
        EXPECT_EQ(lines_of(r.out).size(), 1u) << "--json=short is one line: " << r;
        return parse_json(r.out);
    }
    // A failure: the exit code, and one line on stderr that starts with "vmleasectl: ".
    static void expect_failure(const CtlResult &r, int status, const std::string &message_part) {
        EXPECT_EQ(r.status, status) << r;
        EXPECT_EQ(r.err.rfind("vmleasectl: ", 0), 0u) << r;
        EXPECT_TRUE(contains(r.err, message_part)) << "expected \"" << message_part << "\" in:\n" << r;
    }

    static inline std::unique_ptr<Site> site;
    static inline std::unique_ptr<Host> host;
};

// --- options and usage ------------------------------------------------------

TEST_F(Vmleasectl, HelpAndVersion) {
    CtlResult help = ctl({"--help"});
    EXPECT_EQ(help.status, 0) << help;
    for (const char *verb : {"status", "list", "machines", "inspect", "acquire", "release", "register",
                             "release-machine", "resume", "cleanup", "reload", "monitor"})
        EXPECT_TRUE(contains(help.out, std::string("  ") + verb + " ")) << verb << " missing from --help";
    for (const char *option : {"--json=", "--no-legend", "--no-pager", "--no-ask-password", "--host=", "--shared",
                               "--grace=", "--dry-run", "--version"})
        EXPECT_TRUE(contains(help.out, option)) << option << " missing from --help";
    EXPECT_EQ(ctl({"-h"}).out, help.out);

    CtlResult version = ctl({"--version"});
    EXPECT_EQ(version.status, 0) << version;
    EXPECT_EQ(version.out.rfind("vmleasectl ", 0), 0u) << version;
}

TEST_F(Vmleasectl, UsageErrorsExitWithTwo) {
    expect_failure(ctl({}), 2, "missing command");
    expect_failure(ctl({"frobnicate"}), 2, "unknown command");
    expect_failure(ctl({"list", "extra"}), 2, "too many arguments");
    expect_failure(ctl({"acquire", "vm1"}), 2, "too few arguments");
    expect_failure(ctl({"register", "vm1"}), 2, "too few arguments");
    expect_failure(ctl({"inspect"}), 2, "too few arguments");
    expect_failure(ctl({"--json=yaml", "list"}), 2, "--json");
    expect_failure(ctl({"--no-such-option", "list"}), 2, "--no-such-option");
    expect_failure(ctl({"--shared", "list"}), 2, "--shared");
    expect_failure(ctl({"--dry-run", "reload"}), 2, "--dry-run");
    expect_failure(ctl({"--grace=soon", "register", "vm1", kDisk}), 2, "--grace");
    expect_failure(ctl({"--grace=0", "register", "vm1", kDisk}), 2, "--grace");
    expect_failure(ctl({"inspect", ""}), 2, "DISK");
    // Nothing reached the daemon.
    EXPECT_TRUE(host->client->ListLeases().empty());
}

// --- status -------------------------------------------------------------------

TEST_F(Vmleasectl, StatusTextAndJson) {
    CtlResult r = ctl({"status"});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(r.err.empty()) << r;
    auto f = fields_of(r.out);
    EXPECT_EQ(f["HostId"], "1") << r;
    EXPECT_EQ(f["Lockspace"], "__LIBVIRT__DISKS__") << r;
    EXPECT_EQ(f["LeaseDirectory"], site->lease_dir()) << r;
    EXPECT_EQ(f["LockspaceState"], "joined") << r;
    EXPECT_EQ(f["LeaseCount"], "0") << r;
    EXPECT_EQ(f["MachineCount"], "0") << r;
    EXPECT_EQ(f["Version"], host->client->Version()) << r;
    EXPECT_FALSE(contains(r.out, "\x1b[")) << "no escape sequences when stdout is not a terminal";

    json j = ctl_json({"status"});
    ASSERT_TRUE(j.is_object()) << j;
    EXPECT_EQ(j["host_id"], 1);
    EXPECT_EQ(j["lockspace"], "__LIBVIRT__DISKS__");
    EXPECT_EQ(j["lease_directory"], site->lease_dir());
    EXPECT_EQ(j["lockspace_state"], "joined");
    EXPECT_EQ(j["lease_count"], 0);
    EXPECT_EQ(j["machine_count"], 0);
    EXPECT_EQ(j["version"], host->client->Version());
    EXPECT_TRUE(j["warnings"].is_array()) << j;

    CtlResult pretty = ctl({"--json=pretty", "status"});
    ASSERT_EQ(pretty.status, 0) << pretty;
    EXPECT_GT(lines_of(pretty.out).size(), 5u) << pretty;
    EXPECT_EQ(parse_json(pretty.out), j);
}

// --- acquire, list, inspect, release ----------------------------------------

TEST_F(Vmleasectl, AcquireListInspectRelease) {
    CtlResult acquired = ctl({"acquire", "vm1", kDisk});
    ASSERT_EQ(acquired.status, 0) << acquired;
    EXPECT_TRUE(contains(acquired.out, kLease)) << acquired;
    EXPECT_TRUE(contains(acquired.out, "exclusive")) << acquired;

    CtlResult list = ctl({"list"});
    ASSERT_EQ(list.status, 0) << list;
    auto lines = lines_of(list.out);
    ASSERT_EQ(lines.size(), 4u) << list;  // header, one row, blank, legend
    EXPECT_EQ(words_of(lines[0]), (std::vector<std::string>{"DISK", "RESOURCE", "OWNER", "MODE", "STATE"}));
    EXPECT_EQ(words_of(lines[1]), (std::vector<std::string>{kDisk, kResource, "vm1", "exclusive", "held"}));
    // Columns line up under their headers.
    EXPECT_EQ(lines[0].find("RESOURCE"), lines[1].find(kResource)) << list;
    EXPECT_EQ(lines[0].find("STATE"), lines[1].find("held")) << list;
    EXPECT_EQ(lines[2], "");
    EXPECT_EQ(lines[3], "1 lease listed.");

    CtlResult bare = ctl({"--no-legend", "list"});
    ASSERT_EQ(bare.status, 0) << bare;
    ASSERT_EQ(lines_of(bare.out).size(), 1u) << bare;
    EXPECT_EQ(words_of(lines_of(bare.out)[0]), words_of(lines[1]));

    json leases = ctl_json({"list"});
    ASSERT_TRUE(leases.is_array()) << leases;
    ASSERT_EQ(leases.size(), 1u) << leases;
    EXPECT_EQ(leases[0], (json{{"disk", kDisk}, {"resource", kResource}, {"owner", "vm1"}, {"mode", "exclusive"},
                               {"state", "held"}, {"object", kLease}}));

    CtlResult inspect = ctl({"inspect", kDisk});
    ASSERT_EQ(inspect.status, 0) << inspect;
    auto f = fields_of(inspect.out);
    EXPECT_EQ(f["Identity"], kDisk) << inspect;
    EXPECT_EQ(f["Aliases"], "-") << inspect;
    EXPECT_EQ(f["Resource"], kResource) << inspect;
    EXPECT_EQ(f["Lease file"], site->lease_dir() + "/" + kResource) << inspect;
    auto ilines = lines_of(inspect.out);
    auto header = std::find_if(ilines.begin(), ilines.end(), [](const std::string &l) { return l.rfind("HOST-ID", 0) == 0; });
    ASSERT_NE(header, ilines.end()) << inspect;
    EXPECT_EQ(words_of(*header), (std::vector<std::string>{"HOST-ID", "GENERATION", "STATE", "WHERE"}));
    ASSERT_NE(header + 1, ilines.end()) << inspect;
    auto row = words_of(*(header + 1));
    ASSERT_EQ(row.size(), 5u) << inspect;  // "this host" is two words
    EXPECT_EQ(row[0], "1");
    EXPECT_EQ(row[2], "live");
    EXPECT_EQ(row[3] + " " + row[4], "this host");
    EXPECT_EQ(ilines.back(), "1 owner listed.") << inspect;

    json ij = ctl_json({"inspect", kDisk});
    EXPECT_EQ(ij["disk"], kDisk);
    EXPECT_EQ(ij["resource"], kResource);
    EXPECT_EQ(ij["lease_file"], site->lease_dir() + "/" + kResource);
    ASSERT_EQ(ij["owners"].size(), 1u) << ij;
    EXPECT_EQ(ij["owners"][0]["host_id"], 1);
    EXPECT_TRUE(ij["owners"][0]["generation"].is_number_unsigned()) << ij;
    EXPECT_EQ(ij["owners"][0]["state"], "live");
    EXPECT_EQ(ij["owners"][0]["where"], "this host");

    CtlResult released = ctl({"release", "vm1", kDisk});
    ASSERT_EQ(released.status, 0) << released;
    EXPECT_TRUE(host->client->ListLeases().empty());
    // The lease file stays; nobody holds it now.
    json after = ctl_json({"inspect", kDisk});
    EXPECT_TRUE(after["owners"].empty()) << after;

    CtlResult empty = ctl({"list"});
    ASSERT_EQ(empty.status, 0) << empty;
    EXPECT_EQ(lines_of(empty.out).back(), "0 leases listed.") << empty;
    EXPECT_EQ(ctl_json({"list"}), json::array());
}

TEST_F(Vmleasectl, JsonOfAcquireAndRelease) {
    json a = ctl_json({"acquire", "vm1", kSharedDisk, "--shared"});
    EXPECT_EQ(a, (json{{"owner", "vm1"}, {"disk", kSharedDisk}, {"mode", "shared"},
                       {"lease", a.value("lease", "")}}));
    EXPECT_EQ(a["lease"].get<std::string>().rfind("/org/vmlease/lease/", 0), 0u) << a;
    json b = ctl_json({"acquire", "--shared", "vm2", kSharedDisk});
    EXPECT_EQ(b["lease"], a["lease"]);
    json leases = ctl_json({"list"});
    ASSERT_EQ(leases.size(), 2u) << leases;
    for (const auto &l : leases)
        EXPECT_EQ(l["mode"], "shared") << l;

    json r = ctl_json({"release", "vm1", kSharedDisk});
    EXPECT_EQ(r, (json{{"owner", "vm1"}, {"disk", kSharedDisk}, {"released", true}}));
    EXPECT_EQ(host->client->ListLeases().size(), 1u);
}

TEST_F(Vmleasectl, RelativeDisksAreMadeAbsolute) {
    std::string dir = site->root / "images";
    std::filesystem::create_directories(dir);
    CtlResult r = ctl({"acquire", "vm1", "sub/../disk.img"}, dir);
    ASSERT_EQ(r.status, 0) << r;
    auto leases = host->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<0>(), dir + "/disk.img");
    EXPECT_EQ(ctl({"release", "vm1", "./disk.img"}, dir).status, 0);
    EXPECT_TRUE(host->client->ListLeases().empty());
}

// --- failures: 1 and 4 -------------------------------------------------------

TEST_F(Vmleasectl, HeldLeaseFailsWithTheDaemonsMessage) {
    ASSERT_EQ(ctl({"acquire", "vm1", kDisk}).status, 0);
    CtlResult r = ctl({"acquire", "vm2", kDisk});
    expect_failure(r, 1, "vm1");
    EXPECT_TRUE(contains(r.err, "host id 1")) << r;
    EXPECT_TRUE(r.out.empty()) << r;
    // The daemon's InvalidArgs message comes through too.
    expect_failure(ctl({"acquire", "bad/owner", kDisk}), 1, "bad/owner");
}

TEST_F(Vmleasectl, NoSuchObjectExitsWithFour) {
    expect_failure(ctl({"release", "nobody", kDisk}), 4, "nobody");
    expect_failure(ctl({"release-machine", "nobody"}), 4, "nobody");
    expect_failure(ctl({"inspect", "/srv/never/leased.img"}), 4, "no lease file");
    expect_failure(ctl({"--json=short", "release", "nobody", kDisk}), 4, "nobody");
}

TEST_F(Vmleasectl, ReloadAndABadConfiguration) {
    CtlResult ok = ctl({"reload"});
    EXPECT_EQ(ok.status, 0) << ok;
    EXPECT_FALSE(ok.out.empty()) << ok;
    EXPECT_EQ(ctl_json({"reload"}), (json{{"reloaded", true}}));

    std::string path = host->agent->config_path();
    std::string good = read_file(path);
    write_file(path, good + "no_such_key: 1\n");
    CtlResult bad = ctl({"reload"});
    write_file(path, good);
    expect_failure(bad, 1, "no_such_key");
    EXPECT_TRUE(contains(bad.err, path)) << bad;
    EXPECT_EQ(ctl({"reload"}).status, 0);
}

// --- register, machines, release-machine -------------------------------------

TEST_F(Vmleasectl, RegisterMachinesReleaseMachine) {
    const std::string a = "/srv/vm3/a.img", b = "/srv/vm3/b.img", c = "/srv/vm3/c.img";
    CtlResult r = ctl({"register", "vm3", a, b + ":shared", c + ":none", "--grace=60"});
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_TRUE(contains(r.out, "/org/vmlease/machine/vm3")) << r;

    json leases = ctl_json({"list"});
    ASSERT_EQ(leases.size(), 2u) << leases;  // "none" takes no lease
    std::map<std::string, std::string> modes;
    for (const auto &l : leases)
        modes[l["disk"].get<std::string>()] = l["mode"].get<std::string>();
    EXPECT_EQ(modes, (std::map<std::string, std::string>{{a, "exclusive"}, {b, "shared"}}));

    CtlResult machines = ctl({"machines"});
    ASSERT_EQ(machines.status, 0) << machines;
    auto lines = lines_of(machines.out);
    ASSERT_EQ(lines.size(), 4u) << machines;
    EXPECT_EQ(words_of(lines[0]), (std::vector<std::string>{"NAME", "CLASS", "LEADER", "LEASES", "PROTECTED"}));
    auto row = words_of(lines[1]);
    ASSERT_GE(row.size(), 2u) << machines;
    EXPECT_EQ(row.front(), "vm3");
    EXPECT_EQ(row[row.size() - 2], "2");
    EXPECT_EQ(row.back(), "yes");
    EXPECT_EQ(lines[3], "1 machine listed.");

    json mj = ctl_json({"machines"});
    ASSERT_EQ(mj.size(), 1u) << mj;
    EXPECT_EQ(mj[0]["name"], "vm3");
    EXPECT_EQ(mj[0]["leases"], 2);
    EXPECT_TRUE(mj[0]["leader"].is_number()) << mj;
    EXPECT_TRUE(mj[0]["class"].is_string()) << mj;
    EXPECT_EQ(mj[0]["object"], "/org/vmlease/machine/vm3");
    EXPECT_EQ(mj[0]["protected"], true);

    json rel = ctl_json({"release-machine", "vm3"});
    EXPECT_EQ(rel, (json{{"owner", "vm3"}, {"released", true}}));
    EXPECT_TRUE(host->client->ListLeases().empty());

    json reg = ctl_json({"register", "vm4", a});
    EXPECT_EQ(reg, (json{{"owner", "vm4"}, {"machine", "/org/vmlease/machine/vm4"},
                         {"disks", json::array({{{"disk", a}, {"mode", "exclusive"}}})}}));
    CtlResult done = ctl({"release-machine", "vm4"});
    EXPECT_EQ(done.status, 0) << done;
    EXPECT_TRUE(host->client->ListLeases().empty());
}

// --- cleanup -------------------------------------------------------------------

// What cleanup lists and removes (the host runs with cleanup_min_age 0, so an
// unused lease file qualifies at once); which files qualify is the cleanup
// test's business.
TEST_F(Vmleasectl, CleanupReportsHonestly) {
    host->client->AcquireDisk("gone", "/srv/ctl-unused.img", "exclusive", {});
    host->client->ReleaseDisk("gone", "/srv/ctl-unused.img");
    const std::string file = std::get<1>(host->client->InspectDisk("/srv/ctl-unused.img"));
    auto listed = [&](const json &removed) {
        return std::find(removed.begin(), removed.end(), json(file)) != removed.end();
    };

    CtlResult dry = ctl({"--json=short", "cleanup", "--dry-run"});
    ASSERT_EQ(dry.status, 0) << dry;
    json j = parse_json(dry.out);
    EXPECT_EQ(j["dry_run"], true) << j;
    EXPECT_TRUE(listed(j["removed"])) << j;
    const size_t would = j["removed"].size();
    CtlResult text = ctl({"cleanup", "--dry-run"});
    EXPECT_EQ(text.status, 0) << text;
    EXPECT_TRUE(contains(text.out, "Would remove " + file + "\n")) << text;
    EXPECT_EQ(lines_of(text.out).back(), std::to_string(would) + (would == 1 ? " lease file" : " lease files") +
                                             " would be removed.")
        << text;
    EXPECT_TRUE(std::filesystem::exists(file));

    CtlResult done = ctl({"--json=short", "cleanup"});
    ASSERT_EQ(done.status, 0) << done;
    j = parse_json(done.out);
    EXPECT_EQ(j["dry_run"], false) << j;
    EXPECT_TRUE(listed(j["removed"])) << j;
    EXPECT_FALSE(std::filesystem::exists(file));
    CtlResult again = ctl({"cleanup"});
    EXPECT_EQ(again.status, 0) << again;
    EXPECT_EQ(lines_of(again.out).back(), "0 lease files removed.") << again;
}

// --- monitor -------------------------------------------------------------------

class Monitor {
public:
    Monitor(const std::string &log, const std::string &bus, const std::vector<std::string> &options)
        : log_(log) {
        std::vector<std::string> argv{required_env("VMLEASECTL")};
        argv.insert(argv.end(), options.begin(), options.end());
        argv.push_back("monitor");
        child_ = Child(argv, {{"DBUS_SYSTEM_BUS_ADDRESS", bus}}, log);
    }
    std::string output() const { return read_file(log_); }
    // Acquire and release a probe disk until the monitor has shown it: from
    // then on it is subscribed.
    bool wait_subscribed(ManagerClient &client) {
        return eventually([&] {
            client.AcquireDisk("probe", "/srv/probe.img", "exclusive", {});
            client.ReleaseDisk("probe", "/srv/probe.img");
            return contains(output(), "probe.img");
        });
    }
    bool wait_for(const std::string &text) {
        return eventually([&] { return contains(output(), text); }, 10s);
    }
    int interrupt(int sig) {
        child_.signal(sig);
        return child_.wait(10s);
    }

private:
    std::string log_;
    Child child_;
};

TEST_F(Vmleasectl, MonitorPrintsSignalsUntilInterrupted) {
    Monitor m(site->root / "monitor.log", host->bus_address, {});
    ASSERT_TRUE(m.wait_subscribed(*host->client)) << m.output();
    ASSERT_EQ(ctl({"acquire", "vm1", kDisk}).status, 0);
    ASSERT_EQ(ctl({"release", "vm1", kDisk}).status, 0);
    EXPECT_TRUE(m.wait_for("LeaseReleased owner=vm1")) << m.output();
    int st = m.interrupt(SIGINT);
    ASSERT_TRUE(WIFEXITED(st)) << st;
    EXPECT_EQ(WEXITSTATUS(st), 0) << m.output();
    std::string out = m.output();
    EXPECT_TRUE(contains(out, "LeaseAcquired owner=vm1 disk=" + kDisk + " lease=" + kLease + "\n")) << out;
    EXPECT_TRUE(contains(out, "LeaseReleased owner=vm1 disk=" + kDisk + " lease=" + kLease + "\n")) << out;
    EXPECT_TRUE(contains(out, "PropertiesChanged LeaseCount=1")) << out;
    EXPECT_TRUE(contains(out, "PropertiesChanged LeaseCount=0")) << out;
}

TEST_F(Vmleasectl, MonitorJsonIsOneObjectPerLine) {
    Monitor m(site->root / "monitor-json.log", host->bus_address, {"--json=pretty"});
    ASSERT_TRUE(m.wait_subscribed(*host->client)) << m.output();
    ASSERT_EQ(ctl({"acquire", "vm1", kDisk}).status, 0);
    ASSERT_EQ(ctl({"release", "vm1", kDisk}).status, 0);
    EXPECT_TRUE(m.wait_for("\"LeaseReleased\",\"owner\":\"vm1\"")) << m.output();
    int st = m.interrupt(SIGTERM);
    ASSERT_TRUE(WIFEXITED(st)) << st;
    EXPECT_EQ(WEXITSTATUS(st), 0) << m.output();

    std::vector<json> events;
    for (const auto &line : lines_of(m.output()))
        events.push_back(parse_json(line));
    auto has = [&](const json &wanted) {
        return std::any_of(events.begin(), events.end(), [&](const json &e) { return e == wanted; });
    };
    EXPECT_TRUE(has({{"signal", "LeaseAcquired"}, {"owner", "vm1"}, {"disk", kDisk}, {"lease", kLease}})) << m.output();
    EXPECT_TRUE(has({{"signal", "LeaseReleased"}, {"owner", "vm1"}, {"disk", kDisk}, {"lease", kLease}})) << m.output();
    EXPECT_TRUE(has({{"signal", "PropertiesChanged"},
                     {"interface", "org.vmlease.Manager"},
                     {"changed", {{"lease_count", 1}}},
                     {"invalidated", json::array()}}))
        << m.output();
}

// --- the pager -------------------------------------------------------------------

// Writes its argv and environment to $PAGER_RECORDS/<its own name>, then shows
// its input like cat.
const char kRecordingPager[] = R"(#!/bin/sh
{ echo "argv: $0 $*"; env; } >"$PAGER_RECORDS/${0##*/}"
exec cat
)";

// CVE-2023-26604: run as root through sudo, less's "!sh" is a root shell. Only
// $SYSTEMD_PAGERSECURE=0 (or $VMLEASE_PAGERSECURE=0) lets $PAGER run there.
TEST_F(Vmleasectl, PagerIsSecureUnlessToldOtherwise) {
    TempDir tmp("vmleasectl-pager");
    const std::string records = tmp / "records", pager = tmp / "pager", less = tmp / "bin/less";
    std::filesystem::create_directories(tmp / "bin");
    for (const auto &p : {pager, less}) {
        write_file(p, kRecordingPager);
        chmod(p.c_str(), 0755);
    }
    struct Paged {
        CtlResult r;
        std::optional<std::string> pager, less;  // what each recorded, if it ran
    };
    auto status = [&](std::map<std::string, std::string> env) {
        std::filesystem::remove_all(records);
        std::filesystem::create_directories(records);
        env["PATH"] = tmp / "bin:" + required_env("PATH");  // our less first
        env["PAGER_RECORDS"] = records;
        Paged p{ctl_on_terminal({"status"}, env), {}, {}};
        EXPECT_EQ(p.r.status, 0) << p.r;
        EXPECT_TRUE(contains(p.r.out, "LockspaceState")) << "output lost: " << p.r;
        if (std::filesystem::exists(records + "/pager"))
            p.pager = read_file(records + "/pager");
        if (std::filesystem::exists(records + "/less"))
            p.less = read_file(records + "/less");
        return p;
    };
    // Secure: less with LESSSECURE=1; a $PAGER that is not less does not run,
    // nor does less in its place: the output goes straight to the terminal.
    auto expect_secure = [&](const std::map<std::string, std::string> &env) {
        SCOPED_TRACE(::testing::PrintToString(env));
        Paged l = status(env);
        std::string got = l.less.value_or("");
        EXPECT_TRUE(l.less) << "less did not run: " << l.r;
        EXPECT_TRUE(contains(got, "argv: " + less + " -FRSXMK\n")) << got;
        EXPECT_TRUE(contains(got, "\nLESSSECURE=1\n")) << got;
        EXPECT_TRUE(contains(got, "\nLESS=FRSXMK\n")) << got;
        auto with_pager = env;
        with_pager["PAGER"] = pager;
        Paged p = status(with_pager);
        EXPECT_FALSE(p.pager) << "$PAGER ran in secure mode:\n" << p.pager.value_or("");
        EXPECT_FALSE(p.less) << "less ran instead of $PAGER:\n" << p.less.value_or("");
        return p;
    };
    auto expect_trusted = [&](std::map<std::string, std::string> env) {
        SCOPED_TRACE(::testing::PrintToString(env));
        env["PAGER"] = pager;
        Paged p = status(env);
        ASSERT_TRUE(p.pager) << "$PAGER did not run: " << p.r;
        EXPECT_FALSE(contains(*p.pager, "LESSSECURE=")) << *p.pager;
        EXPECT_TRUE(contains(*p.pager, "\nLESS=FRSXMK\n")) << *p.pager;
    };

    expect_secure({});  // no login session
    for (const char *var : {"SYSTEMD_PAGERSECURE", "VMLEASE_PAGERSECURE"}) {
        expect_secure({{var, "1"}});
        expect_secure({{var, "yes"}});
        expect_trusted({{var, "0"}});
        expect_trusted({{var, "false"}});
    }
    // Ours wins.
    expect_trusted({{"VMLEASE_PAGERSECURE", "0"}, {"SYSTEMD_PAGERSECURE", "1"}});
    expect_secure({{"VMLEASE_PAGERSECURE", "1"}, {"SYSTEMD_PAGERSECURE", "0"}});
    // Not a boolean: secure, and said so.
    Paged unclear = expect_secure({{"SYSTEMD_PAGERSECURE", "maybe"}});
    EXPECT_TRUE(contains(unclear.r.out, "vmleasectl: $SYSTEMD_PAGERSECURE is not a boolean")) << unclear.r;
}

// --- no daemon, no bus ---------------------------------------------------------

TEST_F(Vmleasectl, NoDaemonSaysWhatToDo) {
    host->agent->stop();
    CtlResult r = ctl({"status"});
    CtlResult l = ctl({"--json=short", "list"});
    host->agent->start();
    expect_failure(r, 1, "systemctl start vmlease");
    expect_failure(l, 1, "systemctl start vmlease");
    EXPECT_TRUE(l.out.empty()) << l;
    ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();

    CtlResult nobus = ctl({"status"}, "/", {{"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (site->root / "no-bus")}});
    expect_failure(nobus, 1, "system bus");
}

}  // namespace
