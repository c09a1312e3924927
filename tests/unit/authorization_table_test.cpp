// The method -> polkit action table must cover the whole API: every method
// in the interface XML has an entry, every entry names a real method, and
// every action exists in the installed .policy file.
#include "authorization_table.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace vmlease;

namespace {

std::string source_root() {
    const char *root = getenv("VMLEASE_SOURCE_ROOT");
    if (!root)
        throw std::runtime_error("VMLEASE_SOURCE_ROOT is not set: run through meson test");
    return root;
}

std::string slurp(const std::string &path) {
    std::ifstream f(path);
    if (!f)
        throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// (interface, method) pairs declared in dbus/*.xml.
std::set<std::pair<std::string, std::string>> xml_methods() {
    std::set<std::pair<std::string, std::string>> out;
    std::regex token(R"re(<(interface|method)\s+name="([^"]+)")re");
    for (const auto &entry : std::filesystem::directory_iterator(source_root() + "/dbus")) {
        if (entry.path().extension() != ".xml")
            continue;
        std::string text = slurp(entry.path());
        // strip comments: the documentation mentions names too
        text = std::regex_replace(text, std::regex(R"(<!--[\s\S]*?-->)"), "");
        std::string interface;
        for (std::sregex_iterator it(text.begin(), text.end(), token), end; it != end; ++it) {
            if ((*it)[1] == "interface")
                interface = (*it)[2];
            else
                out.insert({interface, (*it)[2]});
        }
    }
    return out;
}

std::set<std::string> policy_actions() {
    std::string text = slurp(source_root() + "/polkit/org.vmlease.policy");
    std::set<std::string> out;
    std::regex action(R"re(<action\s+id="([^"]+)")re");
    for (std::sregex_iterator it(text.begin(), text.end(), action), end; it != end; ++it)
        out.insert((*it)[1]);
    return out;
}

TEST(AuthorizationTable, CoversEveryMethodInTheXml) {
    auto methods = xml_methods();
    ASSERT_GE(methods.size(), 9u);
    for (const auto &[interface, method] : methods)
        EXPECT_NE(authorization_for(interface, method).kind, Authorization::Denied)
            << interface << "." << method << " has no entry in the authorization table";
}

TEST(AuthorizationTable, NamesOnlyMethodsThatExist) {
    auto methods = xml_methods();
    for (const auto &e : authorization_table())
        EXPECT_TRUE(methods.count({e.interface, e.method})) << e.interface << "." << e.method << " is not in the XML";
}

TEST(AuthorizationTable, EveryActionIsInThePolicyFile) {
    auto actions = policy_actions();
    EXPECT_EQ(actions, (std::set<std::string>{"org.vmlease.acquire-lease", "org.vmlease.release-lease",
                                              "org.vmlease.cleanup", "org.vmlease.manage"}));
    for (const auto &e : authorization_table()) {
        if (e.action) {
            EXPECT_TRUE(actions.count(e.action)) << e.action;
        }
    }
}

TEST(AuthorizationTable, ManageImpliesTheOtherActions) {
    std::string text = slurp(source_root() + "/polkit/org.vmlease.policy");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(<action id="org.vmlease.manage">[\s\S]*?</action>)")));
    std::string manage = m.str();
    for (const char *a : {"org.vmlease.acquire-lease", "org.vmlease.release-lease", "org.vmlease.cleanup"})
        EXPECT_NE(manage.find(a), std::string::npos) << a;
}

TEST(AuthorizationTable, DeniesByDefault) {
    EXPECT_EQ(authorization_for("org.vmlease.Manager", "NoSuchMethod").kind, Authorization::Denied);
    EXPECT_EQ(authorization_for("org.example.Other", "AcquireDisk").kind, Authorization::Denied);
    EXPECT_EQ(authorization_for("org.vmlease.Manager", "ListLeases").kind, Authorization::Open);
    auto acquire = authorization_for("org.vmlease.Manager", "AcquireDisk");
    EXPECT_EQ(acquire.kind, Authorization::NeedsAction);
    EXPECT_EQ(acquire.action, "org.vmlease.acquire-lease");
}

}  // namespace
