// The lock-failure plan (agent -> vmlease-lockfailure) and the helper's
// record of the machines it already acted on.
#include "lockfailure_plan.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

using namespace vmlease;

LockFailurePlan sample() {
    LockFailurePlan p;
    p.bus_address = "unix:path=/run/test/bus";
    p.machines.push_back({"vm1", "poweroff", 1234, 987654, "machine-vm1.scope"});
    p.machines.push_back({"vm-2", "pause", 42, 7, ""});
    p.machines.push_back({"c3", "terminate", 0, 0, "machine-qemu\\x2d3\\x2dc3.scope"});
    p.machines.push_back({"r4", "restart", 9, 9, "machine-r4.scope"});
    p.machines.push_back({"i5", "ignore", 10, 11, ""});
    return p;
}

bool same(const LockFailurePlan &a, const LockFailurePlan &b) {
    if (a.bus_address != b.bus_address || a.machines.size() != b.machines.size())
        return false;
    for (size_t i = 0; i < a.machines.size(); i++) {
        const auto &x = a.machines[i], &y = b.machines[i];
        if (x.machine != y.machine || x.action != y.action || x.leader != y.leader || x.start_time != y.start_time ||
            x.unit != y.unit)
            return false;
    }
    return true;
}

TEST(LockFailurePlan, RoundTrips) {
    auto text = format_plan(sample());
    EXPECT_EQ(text.rfind("vmlease-lockfailure-plan 2\n", 0), 0u) << text;
    EXPECT_NE(text.find("machine vm1 poweroff 1234 987654 machine-vm1.scope\n"), std::string::npos) << text;
    EXPECT_NE(text.find("machine vm-2 pause 42 7 -\n"), std::string::npos) << text;
    auto back = parse_plan(text);
    ASSERT_TRUE(back);
    EXPECT_TRUE(same(*back, sample())) << format_plan(*back);

    LockFailurePlan empty;
    auto e = parse_plan(format_plan(empty));
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->bus_address.empty());
    EXPECT_TRUE(e->machines.empty());
}

TEST(LockFailurePlan, RejectsWhatIsNotAVersion2Plan) {
    const std::string ok = "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2 machine-vm1.scope\n";
    ASSERT_TRUE(parse_plan(ok));
    const char *bad[] = {
        "",
        "vmlease-lockfailure-plan 1\nmachine vm1 poweroff\n",  // version 1
        "vmlease-lockfailure-plan 3\nmachine vm1 poweroff 1 2 -\n",
        "vmlease-lockfailure-plan 2 \nmachine vm1 poweroff 1 2 -\n",
        "vmlease-lockfailure-plan\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff\n",                // v1 line in a v2 file
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2\n",            // no unit
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2 - extra\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 explode 1 2 -\n",           // unknown action
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff -1 2 -\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1x 2 -\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2y -\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 4294967296 2 -\n",  // leader beyond uint32
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2 ../../system.slice\n",
        "vmlease-lockfailure-plan 2\nmachine vm1 poweroff 1 2 ..\n",
        "vmlease-lockfailure-plan 2\nbus\n",
        "vmlease-lockfailure-plan 2\nbus a b\n",
        "vmlease-lockfailure-plan 2\nsomething else\n",
    };
    for (const char *text : bad)
        EXPECT_FALSE(parse_plan(text)) << "accepted:\n" << text;
}

TEST(LockFailurePlan, StartTimeNamesOneProcess) {
    auto self = process_start_time(getpid());
    ASSERT_TRUE(self);
    EXPECT_GT(*self, 0u);
    EXPECT_EQ(process_start_time(getpid()), self);
    EXPECT_FALSE(process_start_time(0));
    EXPECT_FALSE(process_start_time(-1));
    // A child started later has a start time no earlier than ours.
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    ASSERT_GT(child, 0);
    auto theirs = process_start_time(child);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    ASSERT_TRUE(theirs);
    EXPECT_GE(*theirs, *self);
    EXPECT_FALSE(process_start_time(child));  // reaped: gone
}

class ActedRecord : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/vmlease-acted-XXXXXX";
        ASSERT_TRUE(mkdtemp(tmpl));
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string dir;
};

TEST_F(ActedRecord, RecordsReadsAndClears) {
    EXPECT_TRUE(read_acted(dir).empty());
    record_acted(dir, "vm1", "poweroff");
    record_acted(dir, "vm-2", "pause");
    EXPECT_EQ(read_acted(dir), (std::set<std::string>{"vm1", "vm-2"}));
    std::ifstream in(dir + "/" + kLockFailureActedFile);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "machine vm1 poweroff\nmachine vm-2 pause\n");
    clear_acted(dir);
    EXPECT_TRUE(read_acted(dir).empty());
    EXPECT_NO_THROW(clear_acted(dir));  // nothing to clear is fine
    EXPECT_THROW(record_acted(dir + "/missing", "vm1", "poweroff"), std::system_error);
}

TEST_F(ActedRecord, ConcurrentWritersLoseNoLine) {
    std::vector<pid_t> children;
    for (int c = 0; c < 4; c++) {
        pid_t p = fork();
        if (p == 0) {
            for (int i = 0; i < 50; i++)
                record_acted(dir, "vm" + std::to_string(c) + "-" + std::to_string(i), "poweroff");
            _exit(0);
        }
        children.push_back(p);
    }
    for (pid_t p : children) {
        int st = 0;
        waitpid(p, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    EXPECT_EQ(read_acted(dir).size(), 200u);
}

}  // namespace
