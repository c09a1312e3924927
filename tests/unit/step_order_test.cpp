// The daemon's ordering promises, checked on the daemon library itself
// (agent/step_order.*, which Daemon::apply runs stage by stage).
#include "step_order.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>

using namespace vmlease;

namespace {

std::string order_of(const Step &step) {
    std::string out;
    for (Stage s : stages_for(step))
        out += std::string(out.empty() ? "" : " ") + to_string(s);
    return out;
}

// Index of `stage` in the order, or -1.
int at(const Step &step, Stage stage) {
    auto stages = stages_for(step);
    auto it = std::find(stages.begin(), stages.end(), stage);
    return it == stages.end() ? -1 : static_cast<int>(it - stages.begin());
}

Lease lease(const std::string &resource) {
    Lease l;
    l.resource = resource;
    l.disk = "/srv/" + resource + ".img";
    l.owners = {"vm1"};
    return l;
}

Step acquiring() {
    Step s;
    AcquireEffect a{};
    a.resource = "r1";
    a.disk = "/srv/r1.img";
    a.mode = LeaseMode::Exclusive;
    s.sanlock_effects.push_back(a);
    return s;
}

}  // namespace

TEST(StepOrder, ThePlanAndTheStateFileAreWrittenBeforeSanlockIsAskedForALease) {
    Step s = acquiring();
    ASSERT_NE(at(s, Stage::WritePlan), -1) << order_of(s);
    ASSERT_NE(at(s, Stage::SaveState), -1) << order_of(s);
    EXPECT_EQ(at(s, Stage::SaveStateSoon), -1) << "written now, not later: " << order_of(s);
    EXPECT_LT(at(s, Stage::WritePlan), at(s, Stage::Sanlock)) << order_of(s);
    EXPECT_LT(at(s, Stage::SaveState), at(s, Stage::Sanlock)) << order_of(s);
}

TEST(StepOrder, ThePlanIsWrittenBeforeANewLeaseIsAnnounced) {
    Step s;
    s.lease_changes.push_back({LeaseChange::Kind::Acquired, "vm1", lease("r1")});
    ASSERT_NE(at(s, Stage::WritePlan), -1) << order_of(s);
    EXPECT_LT(at(s, Stage::WritePlan), at(s, Stage::Publish)) << order_of(s);
    EXPECT_LT(at(s, Stage::WritePlan), at(s, Stage::Journal)) << order_of(s);
    // A change alone is saved on the next loop iteration.
    EXPECT_NE(at(s, Stage::SaveStateSoon), -1) << order_of(s);
    EXPECT_EQ(at(s, Stage::SaveState), -1) << order_of(s);
}

TEST(StepOrder, ALockFailuresReleasesAndActionsComeAfterTheStateFile) {
    Step s;
    s.lock_failures.push_back({"vm1", "pause", ""});
    s.machine_effects.push_back(MachineEffect::kill("vm1", SIGSTOP));
    s.sanlock_effects.push_back(ReleaseEffect{"r1"});
    ASSERT_NE(at(s, Stage::SaveState), -1) << order_of(s);
    EXPECT_LT(at(s, Stage::SaveState), at(s, Stage::Sanlock)) << order_of(s);
    EXPECT_LT(at(s, Stage::SaveState), at(s, Stage::MachineEffects)) << order_of(s);
    // The journal and the bus say why before the machine is acted on.
    EXPECT_LT(at(s, Stage::Journal), at(s, Stage::MachineEffects)) << order_of(s);
    EXPECT_LT(at(s, Stage::Publish), at(s, Stage::MachineEffects)) << order_of(s);
}

TEST(StepOrder, AStaleVerdictIsSavedBeforeAnyoneHearsOfIt) {
    Step s;
    s.stale.push_back({"vm1", "/srv/r1.img", 2});
    ASSERT_NE(at(s, Stage::SaveState), -1) << order_of(s);
    EXPECT_LT(at(s, Stage::SaveState), at(s, Stage::Publish)) << order_of(s);
}

TEST(StepOrder, NothingToSaveOrPlanForAReplyAlone) {
    Step s;
    s.replies.push_back({7, std::nullopt, "r1"});
    EXPECT_EQ(order_of(s), "journal publish retire-holder");
}
