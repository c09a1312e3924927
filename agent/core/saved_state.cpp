#include "saved_state.hpp"

#include "owner_name.hpp"

#include "disk_path.hpp"

#include <sstream>

namespace vmlease {
namespace {

constexpr const char *kHeader = "vmlease-state 1";

// Disk paths may hold spaces and (in theory) newlines; owners and resource
// names cannot (check_owner_name, MD5 hex).
std::string escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::optional<std::string> unescape(const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (++i == s.size())
            return std::nullopt;
        if (s[i] == '\\')
            out += '\\';
        else if (s[i] == 'n')
            out += '\n';
        else
            return std::nullopt;
    }
    return out;
}

const char *kind_name(SavedOwner::Kind k) {
    switch (k) {
    case SavedOwner::Kind::Machine: return "machine";
    case SavedOwner::Kind::Reserved: return "reserved";
    case SavedOwner::Kind::Api: return "api";
    }
    return "api";
}

}  // namespace

const SavedOwner *SavedState::owner(const std::string &name) const {
    for (const auto &o : owners)
        if (o.name == name)
            return &o;
    return nullptr;
}

//   vmlease-state 1
//   owner machine NAME [LEADER]
//   owner api NAME
//   owner reserved NAME UNTIL
//   lease RESOURCE MODE OWNER[,OWNER...]|- DISK
//   alias RESOURCE PATH          (another name of the lease or pin just above)
//   lver RESOURCE NAME LVER FILE (the version NAME, it or an alias's lease, is held at)
//   pin OWNER LEADER RESOURCE MODE ok|stale DISK
//   paused OWNER LEADER stopped|frozen|stale[,...]
std::string format_saved_state(const SavedState &state) {
    std::string out = std::string(kHeader) + "\n";
    out.reserve(64 + state.owners.size() * 48 + state.leases.size() * 160);
    for (const auto &o : state.owners) {
        out += std::string("owner ") + kind_name(o.kind) + " " + o.name;
        if (o.kind == SavedOwner::Kind::Reserved)
            out += " " + std::to_string(o.reserved_until);
        if (o.kind == SavedOwner::Kind::Machine && o.leader)
            out += " " + std::to_string(o.leader);
        out += "\n";
    }
    for (const auto &l : state.leases) {
        std::string owners = join_owners(l.owners, ",");
        out += "lease " + l.resource + " " + to_string(l.mode) + " " + (owners.empty() ? "-" : owners) + " " +
               escape(l.disk) + "\n";
        for (const auto &a : l.aliases)
            out += "alias " + l.resource + " " + escape(a) + "\n";
        for (const auto &[name, v] : l.versions)
            out += "lver " + l.resource + " " + name + " " + std::to_string(v.lver) + " " + std::to_string(v.file) + "\n";
    }
    for (const auto &p : state.pins) {
        out += "pin " + p.owner + " " + std::to_string(p.leader) + " " + p.resource + " " + to_string(p.mode) + " " + (p.stale ? "stale" : "ok") + " " +
               escape(p.disk) + "\n";
        for (const auto &a : p.aliases)
            out += "alias " + p.resource + " " + escape(a) + "\n";
        for (const auto &[name, v] : p.versions)
            out += "lver " + p.resource + " " + name + " " + std::to_string(v.lver) + " " + std::to_string(v.file) + "\n";
    }
    for (const auto &p : state.paused) {
        std::string how;
        for (auto [set, word] : {std::pair{p.stopped, "stopped"}, {p.frozen, "frozen"}, {p.stale, "stale"}})
            if (set)
                how += (how.empty() ? "" : ",") + std::string(word);
        out += "paused " + p.owner + " " + std::to_string(p.leader) + " " + how + "\n";
    }
    return out;
}

std::optional<SavedState> parse_saved_state(const std::string &text, std::string &error) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != kHeader) {
        error = "line 1: not a vmlease state file (expected \"" + std::string(kHeader) + "\")";
        return std::nullopt;
    }
    SavedState state;
    // The record alias and lver lines belong to: the lease or pin line just above.
    std::string *last_resource = nullptr;
    std::vector<std::string> *last_aliases = nullptr;
    LeaseVersions *last_versions = nullptr;
    for (size_t number = 2; std::getline(in, line); number++) {
        auto bad = [&](const std::string &why) {
            error = "line " + std::to_string(number) + ": " + why;
            return std::nullopt;
        };
        std::istringstream words(line);
        std::string kind;
        words >> kind;
        if (kind == "owner") {
            SavedOwner o;
            std::string k;
            if (!(words >> k >> o.name))
                return bad("an owner line needs a kind and a name");
            if (k == "machine") {
                o.kind = SavedOwner::Kind::Machine;
                words >> o.leader;  // optional (older files have none)
            }
            else if (k == "api")
                o.kind = SavedOwner::Kind::Api;
            else if (k == "reserved" && (words >> o.reserved_until))
                o.kind = SavedOwner::Kind::Reserved;
            else
                return bad("unknown owner kind \"" + k + "\"");
            state.owners.push_back(o);
        } else if (kind == "lease") {
            SavedLease l;
            std::string mode, owners;
            if (!(words >> l.resource >> mode >> owners))
                return bad("a lease line needs a resource, a mode, its owners and a disk");
            if (!is_lease_resource_name(l.resource))
                return bad("\"" + l.resource + "\" is not a lease resource name");
            auto m = lease_mode_from_string(mode);
            if (!m || *m == LeaseMode::None)
                return bad("unknown lease mode \"" + mode + "\"");
            l.mode = *m;
            if (owners != "-") {
                std::istringstream list(owners);
                std::string o;
                while (std::getline(list, o, ','))
                    if (!o.empty())
                        l.owners.push_back(o);
            }
            std::string rest;
            std::getline(words, rest);
            if (rest.size() < 2 || rest[0] != ' ')
                return bad("lease " + l.resource + " has no disk");
            auto disk = unescape(rest.substr(1));
            if (!disk)
                return bad("lease " + l.resource + " has a badly escaped disk");
            l.disk = *disk;
            state.leases.push_back(std::move(l));
            last_resource = &state.leases.back().resource;
            last_aliases = &state.leases.back().aliases;
            last_versions = &state.leases.back().versions;
        } else if (kind == "pin") {
            SavedPin p;
            std::string mode, stale, rest;
            if (!(words >> p.owner >> p.leader >> p.resource >> mode >> stale))
                return bad("a pin line needs an owner, its leader, a resource, a mode, ok|stale and a disk");
            if (!is_lease_resource_name(p.resource))
                return bad("\"" + p.resource + "\" is not a lease resource name");
            auto m = lease_mode_from_string(mode);
            if (!m || *m == LeaseMode::None)
                return bad("unknown lease mode \"" + mode + "\"");
            if (stale != "ok" && stale != "stale")
                return bad("a pin is ok or stale, not \"" + stale + "\"");
            p.mode = *m;
            p.stale = stale == "stale";
            std::getline(words, rest);
            auto disk = rest.size() < 2 || rest[0] != ' ' ? std::nullopt : unescape(rest.substr(1));
            if (!disk)
                return bad("pin of " + p.resource + " has no disk, or a badly escaped one");
            p.disk = *disk;
            state.pins.push_back(std::move(p));
            last_resource = &state.pins.back().resource;
            last_aliases = &state.pins.back().aliases;
            last_versions = &state.pins.back().versions;
        } else if (kind == "alias") {
            std::string resource, rest;
            words >> resource;
            std::getline(words, rest);
            if (!last_resource || *last_resource != resource)
                return bad("an alias line must follow the line of its lease");
            auto path = rest.size() < 2 || rest[0] != ' ' ? std::nullopt : unescape(rest.substr(1));
            if (!path)
                return bad("alias of " + resource + " has no path, or a badly escaped one");
            last_aliases->push_back(*path);
        } else if (kind == "lver") {
            std::string resource, name;
            LeaseVersion v;
            if (!(words >> resource >> name >> v.lver >> v.file) || !is_lease_resource_name(name))
                return bad("a lver line needs a resource, a lease name, a version and a file");
            if (!last_resource || *last_resource != resource)
                return bad("a lver line must follow the line of its lease");
            (*last_versions)[name] = v;
        } else if (kind == "paused") {
            SavedPause p;
            std::string how;
            if (!(words >> p.owner >> p.leader >> how))
                return bad("a paused line needs an owner, its leader and how it was paused");
            std::istringstream list(how);
            for (std::string word; std::getline(list, word, ',');) {
                if (word == "stopped")
                    p.stopped = true;
                else if (word == "frozen")
                    p.frozen = true;
                else if (word == "stale")
                    p.stale = true;
                else
                    return bad("unknown pause \"" + word + "\"");
            }
            state.paused.push_back(p);
        } else if (!kind.empty()) {
            return bad("unknown entry \"" + kind + "\"");
        }
    }
    return state;
}

}  // namespace vmlease
