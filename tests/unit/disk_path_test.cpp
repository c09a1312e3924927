#include "core/disk_path.hpp"

#include <gtest/gtest.h>

using namespace vmlease;

namespace {
std::string ok(const std::string &p) {
    auto r = normalise_disk_path(p);
    EXPECT_TRUE(std::holds_alternative<std::string>(r)) << p;
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "";
}
std::string err(const std::string &p) {
    auto r = normalise_disk_path(p);
    EXPECT_TRUE(std::holds_alternative<PathError>(r)) << p;
    return std::holds_alternative<PathError>(r) ? std::get<PathError>(r).message : "";
}
}  // namespace

TEST(LeaseName, MatchesLibvirtPluginDigest) {
    EXPECT_EQ(lease_resource_name("/var/lib/libvirt/images/demo.img"), "bfa0240911bc17753e0b473688822159");
}

TEST(LeaseName, IsMd5OfTheExactString) {
    EXPECT_EQ(lease_resource_name(""), "d41d8cd98f00b204e9800998ecf8427e");
    EXPECT_NE(lease_resource_name("/a"), lease_resource_name("/a/"));
}

TEST(DiskPath, NormalisesLexically) {
    EXPECT_EQ(ok("/var/lib/libvirt/images/demo.img"), "/var/lib/libvirt/images/demo.img");
    EXPECT_EQ(ok("//var///lib/./libvirt/images//demo.img"), "/var/lib/libvirt/images/demo.img");
    EXPECT_EQ(ok("/var/lib/x/../libvirt/images/demo.img/"), "/var/lib/libvirt/images/demo.img");
    EXPECT_EQ(ok("/../../dev/sda"), "/dev/sda");
    EXPECT_EQ(ok("/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1"),
              "/dev/disk/by-path/ip-192.0.2.8:3260-iscsi-iqn.2026-01.example:db-lun-1");
}

TEST(DiskPath, EquivalentSpellingsShareOneLease) {
    EXPECT_EQ(lease_resource_name(ok("/var/lib/libvirt/images/./demo.img")), "bfa0240911bc17753e0b473688822159");
}

TEST(DiskPath, RejectsBadPaths) {
    EXPECT_NE(err("").find("empty"), std::string::npos);
    EXPECT_NE(err("images/demo.img").find("not absolute"), std::string::npos);
    EXPECT_NE(err("/").find("root"), std::string::npos);
    EXPECT_NE(err("/a/..").find("root"), std::string::npos);
    EXPECT_NE(err(std::string("/a\nb")).find("control"), std::string::npos);
    EXPECT_NE(err("/" + std::string(10000, 'x')).find("limit is 4095"), std::string::npos);
    EXPECT_EQ(ok("/" + std::string(4094, 'x')).size(), 4095u);
}

TEST(LeaseResourceName, ItsFormIsRecognised) {
    EXPECT_TRUE(is_lease_resource_name(lease_resource_name("/srv/a.img")));
    EXPECT_FALSE(is_lease_resource_name("__LIBVIRT__DISKS__"));
    EXPECT_FALSE(is_lease_resource_name(std::string(32, 'A')));
    EXPECT_FALSE(is_lease_resource_name(std::string(31, 'a')));
}
