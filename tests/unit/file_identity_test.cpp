// The file half of the disk identity rule (agent/file_identity.hpp): paths
// resolved like the kernel resolves them, bind mounts seen through.
#include "file_identity.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace vmlease;
namespace fs = std::filesystem;

namespace {

// Each line: id parent major:minor root mount-point options - type source superoptions.
const char *kMounts =
    "21 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    "30 21 8:1 /srv/images /var/lib/libvirt/images rw - ext4 /dev/sda1 rw\n"
    "31 21 0:50 / /mnt/nfs rw - nfs4 filer:/export rw\n"
    "32 21 0:50 / /mnt/nfs-again rw - nfs4 filer:/export rw\n"
    "33 21 0:50 /vm /var/lib/vm rw - nfs4 filer:/export rw\n"
    "34 21 8:2 / /data\\040disks rw - ext4 /dev/sda2 rw\n";

class TempTree : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/vml-identity-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        // Resolved itself: /tmp may be a symlink on some systems.
        dir = fs::canonical(tmpl).string();
    }
    void TearDown() override { fs::remove_all(dir); }
    std::string dir;
};

}  // namespace

TEST(Mountinfo, FieldsAndEscapesAreRead) {
    auto mounts = parse_mountinfo(kMounts);
    ASSERT_EQ(mounts.size(), 6u);
    EXPECT_EQ(mounts[1].id, 30);
    EXPECT_EQ(mounts[1].major, 8u);
    EXPECT_EQ(mounts[1].minor, 1u);
    EXPECT_EQ(mounts[1].root, "/srv/images");
    EXPECT_EQ(mounts[1].mount_point, "/var/lib/libvirt/images");
    EXPECT_EQ(mounts[5].mount_point, "/data disks");
    EXPECT_TRUE(parse_mountinfo("garbage\n\n1 2 x / /\n").empty());
}

TEST(Mountinfo, ABindMountedDirectoryIsNamedThroughTheWholeFileSystem) {
    auto mounts = parse_mountinfo(kMounts);
    EXPECT_EQ(through_preferred_mount(mounts, "/var/lib/libvirt/images/a.img"), "/srv/images/a.img");
    EXPECT_EQ(through_preferred_mount(mounts, "/srv/images/a.img"), "/srv/images/a.img");
    // One NFS export mounted twice and a directory of it a third time: the
    // shortest root, then the shortest mount point.
    EXPECT_EQ(through_preferred_mount(mounts, "/mnt/nfs-again/vm/b.img"), "/mnt/nfs/vm/b.img");
    EXPECT_EQ(through_preferred_mount(mounts, "/var/lib/vm/b.img"), "/mnt/nfs/vm/b.img");
    EXPECT_EQ(through_preferred_mount(mounts, "/data disks/c.img"), "/data disks/c.img");
}

TEST(Mountinfo, AMountHiddenByAnotherIsNotUsed) {
    // The whole NFS file system's mount point has another file system on top.
    auto mounts = parse_mountinfo(std::string(kMounts) + "40 31 8:3 / /mnt/nfs rw - ext4 /dev/sdc rw\n");
    EXPECT_EQ(through_preferred_mount(mounts, "/var/lib/vm/b.img"), "/mnt/nfs-again/vm/b.img");
    EXPECT_EQ(name_on_device(mounts, 0, 99, "/x"), std::nullopt);
    // A file below a bound directory's root that no mount exposes.
    EXPECT_EQ(name_on_device(parse_mountinfo("33 21 0:50 /vm /var/lib/vm rw - nfs4 f:/e rw\n"), 0, 50, "/other/x"),
              std::nullopt);
}

TEST_F(TempTree, ASymlinkedDirectoryGivesTheResolvedPath) {
    fs::create_directories(dir + "/real");
    fs::create_symlink("real", dir + "/link");
    std::ofstream(dir + "/real/disk.img") << "x";
    auto mounts = read_mountinfo();
    EXPECT_EQ(identify_file(dir + "/link/disk.img", mounts).path, dir + "/real/disk.img");
    EXPECT_EQ(identify_file(dir + "/real/disk.img", mounts).path, dir + "/real/disk.img");
    // A file not created yet is named after its resolved directory.
    EXPECT_EQ(identify_file(dir + "/link/new.img", mounts).path, dir + "/real/new.img");
    EXPECT_EQ(identify_file(dir + "/link/sub/./new.img", mounts).path, dir + "/real/sub/new.img");
    // A symlink to the file itself is the file.
    fs::create_symlink("real/disk.img", dir + "/alias.img");
    EXPECT_EQ(identify_file(dir + "/alias.img", mounts).path, dir + "/real/disk.img");
}

TEST_F(TempTree, DotDotAfterASymlinkIsResolvedAsTheKernelDoes) {
    // link -> a/b: "link/.." is a, where lexical removal would say the top.
    fs::create_directories(dir + "/a/b");
    fs::create_symlink("a/b", dir + "/link");
    std::ofstream(dir + "/a/disk.img") << "x";
    std::ofstream(dir + "/disk.img") << "y";
    auto id = identify_file(dir + "/link/../disk.img", read_mountinfo());
    EXPECT_EQ(id.path, dir + "/a/disk.img") << id.error;
}

TEST_F(TempTree, UnresolvablePathsSayWhy) {
    auto mounts = read_mountinfo();
    auto id = identify_file(dir + "/missing/../x.img", mounts);
    EXPECT_TRUE(id.path.empty());
    EXPECT_NE(id.error.find("does not exist"), std::string::npos) << id.error;
    fs::create_symlink("loop", dir + "/loop");
    id = identify_file(dir + "/loop/x.img", mounts);
    EXPECT_TRUE(id.path.empty());
    EXPECT_NE(id.error.find(dir + "/loop/x.img"), std::string::npos) << id.error;
}

TEST(Mountinfo, AMountOnTopThatLeadsElsewhereIsNotUsed) {
    // The same file system mounted again, with another root, on a directory
    // below the preferred mount: the name through "/" would reach another file.
    auto mounts = parse_mountinfo("21 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                                  "30 21 8:1 /srv/other /srv/images rw - ext4 /dev/sda1 rw\n"
                                  "31 21 8:1 /srv/images /var/lib/libvirt/images rw - ext4 /dev/sda1 rw\n");
    EXPECT_EQ(through_preferred_mount(mounts, "/var/lib/libvirt/images/a.img"), "/var/lib/libvirt/images/a.img");
}

TEST_F(TempTree, ADanglingSymlinkIsRefused) {
    fs::create_symlink("nowhere/disk.img", dir + "/dangling.img");
    auto id = identify_file(dir + "/dangling.img", read_mountinfo());
    EXPECT_TRUE(id.path.empty());
    EXPECT_NE(id.error.find("symbolic link to nothing"), std::string::npos) << id.error;
}
