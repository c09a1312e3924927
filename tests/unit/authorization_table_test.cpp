// The method -> polkit action table must cover the whole API: every method
// in the interface XML has an entry, every entry names a real method, and
// every action exists in the installed .policy file.
#include "authorization_table.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
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

// Text with <!-- comments --> removed (the documentation mentions names too).
std::string without_comments(std::string text) {
    for (size_t open; (open = text.find("<!--")) != std::string::npos;) {
        size_t close = text.find("-->", open);
        text.erase(open, close == std::string::npos ? std::string::npos : close + 3 - open);
    }
    return text;
}

// Every `<tag ATTR="value"` in document order, as (tag, value).
std::vector<std::pair<std::string, std::string>> tags(const std::string &text, const std::vector<std::string> &names,
                                                      const std::string &attr) {
    std::vector<std::pair<size_t, std::pair<std::string, std::string>>> found;
    for (const auto &name : names) {
        std::string open = "<" + name + " " + attr + "=\"";
        for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at + 1)) {
            size_t start = at + open.size();
            found.push_back({at, {name, text.substr(start, text.find('"', start) - start)}});
        }
    }
    std::sort(found.begin(), found.end());
    std::vector<std::pair<std::string, std::string>> out;
    for (auto &f : found)
        out.push_back(f.second);
    return out;
}

// (interface, method) pairs declared in dbus/*.xml.
std::set<std::pair<std::string, std::string>> xml_methods() {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto &entry : std::filesystem::directory_iterator(source_root() + "/dbus")) {
        if (entry.path().extension() != ".xml")
            continue;
        std::string interface;
        for (const auto &[tag, value] : tags(without_comments(slurp(entry.path())), {"interface", "method"}, "name")) {
            if (tag == "interface")
                interface = value;
            else
                out.insert({interface, value});
        }
    }
    return out;
}

std::set<std::string> policy_actions() {
    std::set<std::string> out;
    for (const auto &[tag, value] : tags(slurp(source_root() + "/polkit/org.vmlease.policy"), {"action"}, "id"))
        out.insert(value);
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
    size_t start = text.find("<action id=\"org.vmlease.manage\">");
    ASSERT_NE(start, std::string::npos);
    std::string manage = text.substr(start, text.find("</action>", start) - start);
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
