// Authorization: every mutating method asks polkit (real polkitd, or the
// recording dbusmock template) about an unprivileged caller (uid 65534);
// root is allowed without asking; read-only methods are open to everyone.
#include "host.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <signal.h>

using namespace vmtest;

namespace {

constexpr const char *kDisk = "/var/lib/libvirt/images/demo.img";
const std::map<std::string, sdbus::Variant> kNoOptions;

// Every method polkit guards (the mutating ones, and IdentifyDisk, which
// says where paths lead), called by uid 65534 with arguments that would
// otherwise be valid.
const std::vector<std::vector<std::string>> kMutatingCalls = {
    {"AcquireDisk", "vm1", kDisk, "exclusive"},
    {"IdentifyDisk", kDisk},
    {"ReleaseDisk", "vm1", kDisk},
    {"RegisterMachine", "vm1"},
    {"ReleaseMachine", "vm1"},
    {"CleanupLeases"},
    {"Reload"},
};
const std::vector<std::vector<std::string>> kReadOnlyCalls = {
    {"ListLeases"}, {"ListMachines"}, {"InspectDisk", kDisk}, {"Get", "LockspaceState"}, {"Get", "LeaseCount"}};

std::string call_as_nobody(const Host &h, std::vector<std::string> call, bool interactive = true) {
    std::vector<std::string> argv{required_env("CALL_AS")};
    if (!interactive)
        argv.push_back("--no-interactive");
    argv.insert(argv.end(), call.begin(), call.end());
    std::string out;
    int rc = run(as_user(kNobody, argv), {{"DBUS_SYSTEM_BUS_ADDRESS", h.bus_address}}, &out, 60s);
    EXPECT_EQ(rc, 0) << out;
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

std::string error_name(const std::string &reply) {
    if (reply.rfind("ERROR ", 0) != 0)
        return reply;
    return reply.substr(6, reply.find(':') - 6);
}

// --- the recording dbusmock polkitd template ----------------------------------

class MockPolkit : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        become_subreaper();
        root = std::make_unique<TempDir>("vmlease-pkmock");
        root->make_public();
        std::string lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
        host = std::make_unique<Host>(root->path(), lease_dir, 1);
        mock = std::make_unique<DbusMock>(*root / "polkit", host->bus_address,
                                          required_env("POLKITD_TEMPLATE"), "org.freedesktop.PolicyKit1");
        control = sdbus::createProxy(sdbus::createSessionBusConnectionWithAddress(host->bus_address),
                                     "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority");
        ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();
    }
    static void TearDownTestSuite() {
        control.reset();
        mock.reset();
        host.reset();
        root.reset();
    }
    void SetUp() override {
        set_allowed({});
        control->callMethod("SetChallenge").onInterface("org.freedesktop.DBus.Mock").withArguments(false);
        control->callMethod("SetHang").onInterface("org.freedesktop.DBus.Mock").withArguments(false);
        control->callMethod("ClearChecks").onInterface("org.freedesktop.DBus.Mock");
    }
    void TearDown() override {
        for (const auto &l : host->client->ListLeases())
            host->client->ReleaseDisk(l.get<2>(), l.get<0>());
        if (host)
            host->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << host->agent->log() << std::endl;
    }
    static void set_allowed(const std::vector<std::string> &actions) {
        control->callMethod("SetAllowed").onInterface("org.freedesktop.DBus.Mock").withArguments(actions);
    }
    using Check = sdbus::Struct<std::string, std::map<std::string, std::string>, uint32_t, std::string, std::string>;
    static std::vector<Check> checks() {
        std::vector<Check> out;
        control->callMethod("GetChecks").onInterface("org.freedesktop.DBus.Mock").storeResultsTo(out);
        return out;
    }

    static inline std::unique_ptr<TempDir> root;
    static inline std::unique_ptr<Host> host;
    static inline std::unique_ptr<DbusMock> mock;
    static inline std::unique_ptr<sdbus::IProxy> control;
};

TEST_F(MockPolkit, EveryMutatingMethodIsDeniedWhenPolkitSaysNo) {
    for (const auto &call : kMutatingCalls)
        EXPECT_EQ(error_name(call_as_nobody(*host, call)), "org.freedesktop.DBus.Error.AccessDenied") << call[0];
    EXPECT_TRUE(host->client->ListLeases().empty());
    EXPECT_EQ(checks().size(), kMutatingCalls.size());
}

// ReleaseDisk of a disk nobody here holds gives back an orphan whose owner
// is unknown: release-lease for the owner a caller names is not enough, it
// takes org.vmlease.manage (asked for with the disk and orphan=true).
TEST_F(MockPolkit, ReleasingAnOrphanTakesTheManageAction) {
    host->client->AcquireDisk("alice", kDisk, "exclusive", kNoOptions);
    int st = host->agent->crash();
    ASSERT_TRUE(WIFSIGNALED(st)) << describe_status(st);
    write_file(host->dir + "/agent/runtime/leases", "");  // who owned it is lost
    host->agent->start();
    ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();
    ASSERT_TRUE(host->client->ListLeases().empty());

    set_allowed({"org.vmlease.release-lease"});
    EXPECT_EQ(error_name(call_as_nobody(*host, {"ReleaseDisk", "mallory", kDisk})),
              "org.freedesktop.DBus.Error.AccessDenied");
    auto asked = checks();
    ASSERT_EQ(asked.size(), 2u);
    EXPECT_EQ(asked[1].get<0>(), "org.vmlease.manage");
    EXPECT_EQ(asked[1].get<1>().at("orphan"), "true");
    // Still held by this host: root on another host's view is the lease file.
    EXPECT_EQ(error_of([&] { host->client->AcquireDisk("bob", kDisk, "exclusive", kNoOptions); }),
              "org.vmlease.Error.LeaseHeld");

    set_allowed({"org.vmlease.release-lease", "org.vmlease.manage"});
    EXPECT_EQ(call_as_nobody(*host, {"ReleaseDisk", "mallory", kDisk}), "OK");
    host->client->AcquireDisk("bob", kDisk, "exclusive", kNoOptions);  // free now
}

TEST_F(MockPolkit, ReadOnlyMethodsNeedNoAuthorization) {
    host->client->AcquireDisk("keeper", kDisk, "exclusive", kNoOptions);
    for (const auto &call : kReadOnlyCalls)
        EXPECT_EQ(call_as_nobody(*host, call), "OK") << call[0];
    EXPECT_TRUE(checks().empty());
}

TEST_F(MockPolkit, AllowedActionGoesThroughWithTheRightDetails) {
    set_allowed({"org.vmlease.acquire-lease"});
    EXPECT_EQ(call_as_nobody(*host, {"AcquireDisk", "vm1", "/var/lib/libvirt//images/./demo.img", "exclusive"}), "OK");
    auto leases = host->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "vm1");

    auto c = checks();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].get<0>(), "org.vmlease.acquire-lease");
    // details name the owner and the canonical disk
    EXPECT_EQ(c[0].get<1>(), (std::map<std::string, std::string>{{"owner", "vm1"}, {"disk", kDisk}}));
    EXPECT_EQ(c[0].get<2>(), 1u);  // the caller allowed interaction
    EXPECT_EQ(c[0].get<3>(), "system-bus-name");
    EXPECT_EQ(c[0].get<4>().rfind(":1.", 0), 0u) << c[0].get<4>();

    // acquire-lease does not cover releasing
    EXPECT_EQ(error_name(call_as_nobody(*host, {"ReleaseDisk", "vm1", kDisk})), "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_EQ(host->client->ListLeases().size(), 1u);
    set_allowed({"org.vmlease.release-lease"});
    EXPECT_EQ(call_as_nobody(*host, {"ReleaseDisk", "vm1", kDisk}), "OK");
    EXPECT_TRUE(host->client->ListLeases().empty());
    EXPECT_EQ(checks().back().get<0>(), "org.vmlease.release-lease");
}

TEST_F(MockPolkit, InteractiveFlagFollowsTheCallersMessage) {
    control->callMethod("SetChallenge").onInterface("org.freedesktop.DBus.Mock").withArguments(true);
    EXPECT_EQ(error_name(call_as_nobody(*host, {"AcquireDisk", "vm1", kDisk, "exclusive"}, false)),
              "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
    EXPECT_EQ(checks().back().get<2>(), 0u);
    EXPECT_EQ(error_name(call_as_nobody(*host, {"AcquireDisk", "vm1", kDisk, "exclusive"}, true)),
              "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_EQ(checks().back().get<2>(), 1u);
}

TEST_F(MockPolkit, RootIsAllowedWithoutAskingPolkit) {
    host->client->AcquireDisk("vm1", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(leases_of(*host), (Leases{{kDisk, "vm1", "held"}}));
    host->client->ReleaseDisk("vm1", kDisk);
    EXPECT_TRUE(host->client->ListLeases().empty());
    EXPECT_TRUE(checks().empty());
}

TEST_F(MockPolkit, InvalidArgumentsAreRejectedBeforePolkitIsAsked) {
    EXPECT_EQ(error_name(call_as_nobody(*host, {"AcquireDisk", "vm1", "relative.img", "exclusive"})),
              "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_TRUE(checks().empty());
}

TEST_F(MockPolkit, AuthorizationsInFlightPerCallerAreBounded) {
    set_allowed({"org.vmlease.acquire-lease"});
    control->callMethod("SetHang").onInterface("org.freedesktop.DBus.Mock").withArguments(true);
    std::string log = *root / "repeat.log";
    std::filesystem::remove(log);
    Child calls(as_user(kNobody, {required_env("CALL_AS"), "--repeat", "68", "AcquireDisk", "vm1", kDisk, "exclusive"}),
                {{"DBUS_SYSTEM_BUS_ADDRESS", host->bus_address}}, log);
    auto count = [&](const std::string &what) {
        std::string text = read_file(log);
        size_t n = 0;
        for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += what.size())
            n++;
        return n;
    };
    // 64 wait for polkit; the 4 beyond the limit are answered at once.
    ASSERT_TRUE(eventually([&] { return checks().size() >= 64 && count("LimitsExceeded") >= 4; }, 20s))
        << read_file(log);
    EXPECT_EQ(checks().size(), 64u);
    EXPECT_EQ(count("LimitsExceeded"), 4u);
    EXPECT_EQ(count("OK"), 0u);
    EXPECT_TRUE(host->client->ListLeases().empty());
    // polkit answers: the 64 go through (the same owner and disk: one lease)
    control->callMethod("SetHang").onInterface("org.freedesktop.DBus.Mock").withArguments(false);
    ASSERT_NE(calls.wait(20s), -1);
    EXPECT_EQ(count("OK"), 64u) << read_file(log);
    EXPECT_EQ(host->client->ListLeases().size(), 1u);
}

TEST(NoPolkit, WithoutPolkitUnprivilegedCallersAreDenied) {
    Site site("vmlease-nopk", true);
    Host h(site.root.path(), site.lease_dir(), 1);
    ASSERT_TRUE(h.client->wait_property("LockspaceState", "joined"));
    std::string reply = call_as_nobody(h, {"AcquireDisk", "vm1", kDisk, "exclusive"});
    EXPECT_EQ(error_name(reply), "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_NE(reply.find("polkit"), std::string::npos) << reply;
    EXPECT_TRUE(h.client->ListLeases().empty());
    EXPECT_EQ(call_as_nobody(h, {"ListLeases"}), "OK");
}

// --- the real polkitd with the project's own .policy ----------------------------

class RealPolkit : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        become_subreaper();
        root = std::make_unique<TempDir>("vmlease-polkitd");
        root->make_public();
        std::string lease_dir = *root / "leases";
        std::filesystem::create_directories(lease_dir);
        host = std::make_unique<Host>(root->path(), lease_dir, 1);
        ASSERT_TRUE(host->client->wait_property("LockspaceState", "joined")) << host->agent->log();
    }
    static void TearDownTestSuite() {
        host.reset();
        root.reset();
    }
    void TearDown() override {
        if (host)
            host->check();  // sanitizer reports, unclean exits (tests/harness/host.hpp)
        if (HasFailure())
            std::cerr << "--- vmleased log ---\n" << host->agent->log() << std::endl;
    }
    static inline std::unique_ptr<TempDir> root;
    static inline std::unique_ptr<Host> host;
};

TEST_F(RealPolkit, UnprivilegedCallerIsRefusedAndReadOnlyMethodsWork) {
    Polkitd polkitd(*root / "polkitd", host->bus_address, required_env("VMLEASE_POLICY"), "");
    for (const auto &call : kMutatingCalls) {
        std::string without = call_as_nobody(*host, call, false);
        std::string with = call_as_nobody(*host, call, true);
        std::cout << "uid 65534 " << call[0] << " (no interaction): " << without << "\n"
                  << "uid 65534 " << call[0] << " (interaction allowed): " << with << "\n";
        EXPECT_EQ(error_name(without), "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired") << call[0];
        EXPECT_TRUE(error_name(with) == "org.freedesktop.DBus.Error.AccessDenied" ||
                    error_name(with) == "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
            << call[0] << ": " << with;
    }
    EXPECT_TRUE(host->client->ListLeases().empty());
    for (const auto &call : kReadOnlyCalls) {
        if (call[0] == "InspectDisk")
            continue;  // no lease file exists for the disk here
        EXPECT_EQ(call_as_nobody(*host, call), "OK") << call[0];
    }
    // root still may
    host->client->AcquireDisk("vm-root", kDisk, "exclusive", kNoOptions);
    EXPECT_EQ(leases_of(*host), (Leases{{kDisk, "vm-root", "held"}}));
    host->client->ReleaseDisk("vm-root", kDisk);
    EXPECT_TRUE(host->client->ListLeases().empty());
}

TEST_F(RealPolkit, ARuleGrantingTheCallersGroupLetsTheCallThrough) {
    Polkitd polkitd(*root / "polkitd-rule", host->bus_address, required_env("VMLEASE_POLICY"),
                    "polkit.addRule(function(action, subject) {\n"
                    "  if (action.id.indexOf(\"org.vmlease.\") == 0 && subject.isInGroup(\"nogroup\"))\n"
                    "    return polkit.Result.YES;\n"
                    "});\n");
    EXPECT_EQ(call_as_nobody(*host, {"AcquireDisk", "vm1", kDisk, "exclusive"}, false), "OK") << polkitd.log();
    auto leases = host->client->ListLeases();
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].get<2>(), "vm1");
    EXPECT_EQ(call_as_nobody(*host, {"ReleaseDisk", "vm1", kDisk}, false), "OK");
    EXPECT_TRUE(host->client->ListLeases().empty());
}

// --- the installed bus policy ---------------------------------------------------

TEST(BusPolicy, OnlyRootOwnsTheNameAndEveryoneMayCallIt) {
    become_subreaper();
    TempDir root("vmlease-buspolicy");
    root.make_public();
    DbusDaemon bus(root / "bus", required_env("SYSTEM_BUS_POLICY_CONF"),
                   {{"@POLICY@", required_env("VMLEASE_BUS_POLICY")}});
    auto bus_call = [&](bool as_nobody, std::vector<std::string> call) {
        std::vector<std::string> argv{"/usr/bin/busctl", "--address=" + bus.address(), "call", "org.freedesktop.DBus",
                                      "/org/freedesktop/DBus", "org.freedesktop.DBus"};
        argv.insert(argv.end(), call.begin(), call.end());
        std::string out;
        run(as_nobody ? as_user(kNobody, argv) : argv, {}, &out, 10s);
        return out;
    };
    // The unprivileged client reaches the bus, but may not own org.vmlease.
    EXPECT_EQ(bus_call(true, {"GetId"}).rfind("s \"", 0), 0u);
    EXPECT_EQ(bus_call(true, {"RequestName", "su", "org.vmlease", "0"}), "Call failed: Access denied\n");
    // root may (1 = primary owner); then let it go for the agent.
    EXPECT_EQ(bus_call(false, {"RequestName", "su", "org.vmlease", "0"}), "u 1\n");

    // root may own it: the real agent takes the name on this bus, and an
    // unprivileged caller may still call it (polkit decides what it may do).
    std::string lease_dir = root / "leases";
    std::filesystem::create_directories(lease_dir);
    SanlockDaemon sanlock(root / "sanlock");
    AgentConfig config;
    config.lease_dir = lease_dir;
    Agent agent(root / "agent", bus.address(), sanlock, config);
    auto call = [&](std::vector<std::string> args) {
        std::vector<std::string> argv{required_env("CALL_AS")};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string out;
        run(as_user(kNobody, argv), {{"DBUS_SYSTEM_BUS_ADDRESS", bus.address()}}, &out, 30s);
        return out;
    };
    EXPECT_EQ(call({"ListLeases"}), "OK\n");
    EXPECT_EQ(call({"Get", "HostId"}), "OK\n");
    std::string acquire = call({"AcquireDisk", "vm1", kDisk, "exclusive"});
    EXPECT_EQ(acquire.rfind("ERROR org.freedesktop.DBus.Error.AccessDenied: not authorized", 0), 0u) << acquire;
}

}  // namespace
