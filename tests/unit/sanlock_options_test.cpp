// What vmleased reads of the sanlock daemon's settings (agent/sanlock_options.*):
// sanlock.conf as sanlock reads it, its command line winning.
#include "sanlock_options.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

using namespace vmlease;

namespace {

struct Dirs {
    std::string root;
    Dirs() {
        char t[] = "/tmp/vmlease-sanlock-options.XXXXXX";
        root = mkdtemp(t);
    }
    ~Dirs() { std::system(("rm -rf " + root).c_str()); }
    std::string conf(const std::string &text) {
        std::ofstream(root + "/sanlock.conf") << text;
        return root + "/sanlock.conf";
    }
    // A "sanlock daemon" whose command line is this test's own: its pid file.
    std::string run_dir() {
        std::ofstream(root + "/sanlock.pid") << getpid() << "\n";
        return root;
    }
};

TEST(SanlockOptions, ConfValuesAreReadWithOrWithoutSpacesAroundTheEqualsSign) {
    Dirs d;
    auto o = read_sanlock_options(d.root + "/none", d.conf("# use_watchdog = 1\nuse_watchdog=0\nmax_worker_threads = 32\n"));
    EXPECT_EQ(o.watchdog, std::optional<bool>(false));
    EXPECT_EQ(o.worker_threads, 32u);
    o = read_sanlock_options(d.root + "/none", d.conf("use_watchdog = 1\nmax_worker_threads=1\n"));
    EXPECT_EQ(o.watchdog, std::optional<bool>(true));
    EXPECT_EQ(o.worker_threads, 2u) << "sanlock raises it to 2";
    o = read_sanlock_options(d.root + "/none", d.conf("max_worker_threads_x = 40\n"));
    EXPECT_EQ(o.watchdog, std::nullopt);
    EXPECT_EQ(o.worker_threads, kSanlockDefaultWorkerThreads);
}

TEST(SanlockOptions, NoWarningWithoutARunningSanlockOrWithItsWatchdog) {
    Dirs d;
    const std::string off = d.conf("use_watchdog=0\n");
    EXPECT_FALSE(sanlock_watchdog_warning(read_sanlock_options(d.root + "/none", off)));
    // Running (this test's command line has no -w): the file's setting counts.
    auto o = read_sanlock_options(d.run_dir(), off);
    EXPECT_TRUE(o.running);
    ASSERT_TRUE(sanlock_watchdog_warning(o));
    EXPECT_NE(sanlock_watchdog_warning(o)->find("sanlock_opts"), std::string::npos);
    EXPECT_FALSE(sanlock_watchdog_warning(read_sanlock_options(d.run_dir(), d.conf("use_watchdog = 1\n"))));
}

}  // namespace
