#include "verbs.hpp"

#include "bus.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <iostream>

namespace vmleasectl {
namespace {

constexpr const char *kGreen = "\x1b[0;1;32m";
constexpr const char *kYellow = "\x1b[0;1;33m";
constexpr const char *kRed = "\x1b[0;1;31m";

// "Label: value" lines, labels right-aligned as in machinectl status.
void print_fields(const std::vector<std::pair<std::string, std::string>> &fields) {
    size_t w = 0;
    for (const auto &[label, _] : fields)
        w = std::max(w, label.size());
    for (const auto &[label, value] : fields)
        std::cout << std::setw(static_cast<int>(w)) << label << ": " << value << "\n";
}

// One JSON object per table row, keys from `keys` in order.
Json rows_to_objects(const Json &rows, const std::vector<const char *> &keys) {
    Json out = Json::array();
    for (const auto &row : rows) {
        Json o = Json::object();
        for (size_t i = 0; i < keys.size() && i < row.size(); i++)
            o[keys[i]] = row[i];
        out.push_back(o);
    }
    return out;
}

Table rows_to_table(std::vector<std::string> header, const Json &rows, size_t columns) {
    Table t{std::move(header), {}};
    for (const auto &row : rows) {
        std::vector<std::string> cells;
        for (size_t i = 0; i < columns && i < row.size(); i++) {
            std::string text = to_text(row[i]);
            cells.push_back(text.empty() ? "-" : text);
        }
        t.rows.push_back(std::move(cells));
    }
    return t;
}

std::string state_colored(const Output &out, const std::string &state) {
    if (state == "joined")
        return highlight(out, state, kGreen);
    return highlight(out, state, state == "failed" || state == "absent" ? kRed : kYellow);
}

// --- status -----------------------------------------------------------------

const char *const kStatusFields[] = {"Version",        "HostId",         "Lockspace",  "LeaseDirectory",
                                     "LockspaceState", "LeaseCount",     "MachineCount"};

Json list_machines(Context &c) {
    return call_method(c.bus, {.member = "ListMachines", .reply_signature = "a(ssuuob)",
                               .what = "cannot list machines"})[0];
}

int verb_status(Context &c, const Args &) {
    Json props = call_method(c.bus, {.interface = kPropertiesInterface,
                                     .member = "GetAll",
                                     .reply_signature = "a{sv}",
                                     .what = "cannot read vmleased's status",
                                     .append = [](sd_bus_message *m) {
                                         check(sd_bus_message_append(m, "s", kManagerInterface), "cannot build call");
                                     }})[0];
    Json warnings = props.value("Warnings", Json::array());
    // Each machine not protected by a lease, with each disk's reason and since when.
    Json unprotected = Json::array();
    for (const auto &row : list_machines(c)) {
        if (row.size() < 6 || !row[5].is_boolean() || row[5].get<bool>())
            continue;
        Json disks;
        try {
            disks = call_method(c.bus, {.interface = kPropertiesInterface,
                                         .member = "Get",
                                         .reply_signature = "v",
                                         .what = "cannot read machine " + to_text(row[0]),
                                         .append = [](sd_bus_message *m) {
                                             check(sd_bus_message_append(m, "ss", "org.vmlease.Machine",
                                                                         "UnprotectedDisks"),
                                                   "cannot build call");
                                         },
                                         .path = to_text(row[4])})[0];
        } catch (const Failure &) {
            continue;  // gone since it was listed
        }
        unprotected.push_back({{"machine", row[0]}, {"disks", rows_to_objects(disks, {"disk", "reason", "since"})}});
    }
    if (c.out.json != JsonMode::Off) {
        Json o = Json::object();
        for (const auto &[k, v] : props.items())
            o[snake_case(k)] = v;
        o["warnings"] = warnings;
        o["unprotected_machines"] = unprotected;
        print_json(c.out, o);
        return kExitOk;
    }
    std::vector<std::pair<std::string, std::string>> fields;
    for (const char *name : kStatusFields)
        if (props.contains(name))
            fields.emplace_back(name, name == std::string("LockspaceState")
                                          ? state_colored(c.out, to_text(props[name]))
                                          : to_text(props[name]));
    print_fields(fields);
    for (const auto &w : warnings)
        std::cout << highlight(c.out, "Warning: " + to_text(w), kYellow) << "\n";
    for (const auto &m : unprotected) {
        bool stale = std::any_of(m["disks"].begin(), m["disks"].end(), [](const Json &d) {
            return to_text(d["reason"]).rfind("stale", 0) == 0;
        });
        if (stale)
            std::cout << highlight(c.out,
                                   "Stale: " + to_text(m["machine"]) +
                                       " (another host took its disk since; never resume it, kill it with SIGKILL)",
                                   kRed)
                      << "\n";
        else
            std::cout << highlight(c.out, "Unprotected: " + to_text(m["machine"]), kRed) << "\n";
        for (const auto &d : m["disks"]) {
            uint64_t since = d["since"].is_number() ? d["since"].get<uint64_t>() : 0;
            std::string when;
            if (since) {
                time_t t = static_cast<time_t>(since / 1000000);
                char buf[64];
                struct tm tm {};
                localtime_r(&t, &tm);
                strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
                when = std::string(" (since ") + buf + ")";
            }
            std::cout << "  " << to_text(d["disk"]) << ": " << to_text(d["reason"]) << when << "\n";
        }
    }
    return kExitOk;
}

// --- list, machines, inspect ------------------------------------------------

int verb_list(Context &c, const Args &) {
    Json rows = call_method(c.bus, {.member = "ListLeases", .reply_signature = "a(ssssso)",
                                    .what = "cannot list leases"})[0];
    if (c.out.json != JsonMode::Off) {
        print_json(c.out, rows_to_objects(rows, {"disk", "resource", "owner", "mode", "state", "object"}));
        return kExitOk;
    }
    print_table(c.out, rows_to_table({"DISK", "RESOURCE", "OWNER", "MODE", "STATE"}, rows, 5));
    print_footer(c.out, rows.size(), "lease", "leases", "listed");
    return kExitOk;
}

int verb_machines(Context &c, const Args &) {
    Json rows = list_machines(c);
    if (c.out.json != JsonMode::Off) {
        print_json(c.out, rows_to_objects(rows, {"name", "class", "leader", "leases", "object", "protected"}));
        return kExitOk;
    }
    Table t = rows_to_table({"NAME", "CLASS", "LEADER", "LEASES"}, rows, 4);
    t.header.push_back("PROTECTED");
    for (size_t i = 0; i < t.rows.size(); i++) {
        auto &row = t.rows[i];
        if (row.size() > 2 && row[2] == "0")
            row[2] = "-";  // no leader process (yet)
        bool is_protected = rows[i].size() > 5 && rows[i][5].is_boolean() && rows[i][5].get<bool>();
        row.push_back(is_protected ? "yes" : highlight(c.out, "NO", kRed));
    }
    print_table(c.out, t);
    print_footer(c.out, rows.size(), "machine", "machines", "listed");
    return kExitOk;
}

int verb_inspect(Context &c, const Args &args) {
    std::string disk = absolute_disk(args[0]);
    auto with_disk = [&](sd_bus_message *m) { check(sd_bus_message_append(m, "s", disk.c_str()), "cannot build call"); };
    // Its identity and aliases first; a disk without an identity (or an
    // agent without IdentifyDisk) is still inspected by its path.
    Json identity = nullptr, aliases = Json::array();
    std::string why_none;
    try {
        Json id = call_method(c.bus, {.member = "IdentifyDisk", .reply_signature = "ssa(ss)",
                                      .what = "cannot identify " + disk, .append = with_disk});
        identity = id[0];
        aliases = rows_to_objects(id[2], {"path", "resource"});
    } catch (const Failure &f) {
        why_none = f.message;
    }
    Json r = call_method(c.bus, {.member = "InspectDisk", .reply_signature = "ssa(ttss)t",
                                 .what = "cannot inspect " + disk, .append = with_disk});
    if (c.out.json != JsonMode::Off) {
        print_json(c.out, Json{{"disk", disk},
                               {"identity", identity},
                               {"aliases", aliases},
                               {"resource", r[0]},
                               {"lease_file", r[1]},
                               {"version", r[3]},
                               {"owners", rows_to_objects(r[2], {"host_id", "generation", "state", "where"})}});
        return kExitOk;
    }
    std::string alias_text;
    for (const auto &a : aliases)
        alias_text += (alias_text.empty() ? "" : ", ") + to_text(a["path"]);
    print_fields({{"Disk", disk},
                  {"Identity", identity.is_null() ? "none (" + why_none + ")" : to_text(identity)},
                  {"Aliases", alias_text.empty() ? "-" : alias_text},
                  {"Resource", to_text(r[0])},
                  {"Lease file", to_text(r[1])},
                  {"Version", to_text(r[3])}});
    std::cout << "\n";
    print_table(c.out, rows_to_table({"HOST-ID", "GENERATION", "STATE", "WHERE"}, r[2], 4));
    print_footer(c.out, r[2].size(), "owner", "owners", "listed");
    return kExitOk;
}

// --- acquire, release, register, release-machine ---------------------------

int verb_acquire(Context &c, const Args &args) {
    const std::string &owner = args[0];
    std::string disk = absolute_disk(args[1]);
    const char *mode = c.options.shared ? "shared" : "exclusive";
    Json r = call_method(c.bus, {.member = "AcquireDisk", .reply_signature = "o",
                                 .what = "cannot acquire " + disk + " for " + owner,
                                 .append = [&](sd_bus_message *m) {
                                     check(sd_bus_message_append(m, "sssa{sv}", owner.c_str(), disk.c_str(), mode, 0),
                                           "cannot build call");
                                 },
                                 .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off)
        print_json(c.out, Json{{"owner", owner}, {"disk", disk}, {"mode", mode}, {"lease", r[0]}});
    else
        std::cout << "Acquired " << mode << " lease on " << disk << " for " << owner << ": " << to_text(r[0]) << "\n";
    return kExitOk;
}

int verb_release(Context &c, const Args &args) {
    const std::string &owner = args[0];
    std::string disk = absolute_disk(args[1]);
    call_method(c.bus, {.member = "ReleaseDisk", .reply_signature = "",
                        .what = "cannot release " + disk + " for " + owner,
                        .append = [&](sd_bus_message *m) {
                            check(sd_bus_message_append(m, "ss", owner.c_str(), disk.c_str()), "cannot build call");
                        },
                        .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off)
        print_json(c.out, Json{{"owner", owner}, {"disk", disk}, {"released", true}});
    else
        std::cout << "Released the lease of " << owner << " on " << disk << ".\n";
    return kExitOk;
}

struct DiskSpec {
    std::string path;
    std::string mode;
};

// PATH, PATH:exclusive, PATH:shared or PATH:none (a path may itself contain ':').
DiskSpec parse_disk_spec(const std::string &arg) {
    size_t colon = arg.rfind(':');
    if (colon != std::string::npos) {
        std::string mode = arg.substr(colon + 1);
        if (mode == "exclusive" || mode == "shared" || mode == "none")
            return {absolute_disk(arg.substr(0, colon)), mode};
    }
    return {absolute_disk(arg), "exclusive"};
}

void append_register_args(sd_bus_message *m, const std::string &owner, const std::vector<DiskSpec> &disks,
                          const std::optional<uint32_t> &grace) {
    check(sd_bus_message_append(m, "s", owner.c_str()), "cannot build call");
    check(sd_bus_message_open_container(m, 'a', "(ss)"), "cannot build call");
    for (const auto &d : disks)
        check(sd_bus_message_append(m, "(ss)", d.path.c_str(), d.mode.c_str()), "cannot build call");
    check(sd_bus_message_close_container(m), "cannot build call");
    if (grace)
        check(sd_bus_message_append(m, "a{sv}", 1, "grace_seconds", "u", *grace), "cannot build call");
    else
        check(sd_bus_message_append(m, "a{sv}", 0), "cannot build call");
}

int verb_register(Context &c, const Args &args) {
    const std::string &owner = args[0];
    std::vector<DiskSpec> disks;
    for (size_t i = 1; i < args.size(); i++)
        disks.push_back(parse_disk_spec(args[i]));
    Json r = call_method(c.bus, {.member = "RegisterMachine", .reply_signature = "o",
                                 .what = "cannot register " + owner,
                                 .append = [&](sd_bus_message *m) {
                                     append_register_args(m, owner, disks, c.options.grace_seconds);
                                 },
                                 .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off) {
        Json list = Json::array();
        for (const auto &d : disks)
            list.push_back({{"disk", d.path}, {"mode", d.mode}});
        Json o{{"owner", owner}, {"machine", r[0]}, {"disks", list}};
        if (c.options.grace_seconds)
            o["grace_seconds"] = *c.options.grace_seconds;
        print_json(c.out, o);
        return kExitOk;
    }
    std::cout << "Registered " << owner << " with " << disks.size() << (disks.size() == 1 ? " disk" : " disks")
              << ": " << to_text(r[0]) << "\n";
    return kExitOk;
}

int verb_release_machine(Context &c, const Args &args) {
    const std::string &owner = args[0];
    call_method(c.bus, {.member = "ReleaseMachine", .reply_signature = "",
                        .what = "cannot release the leases of " + owner,
                        .append = [&](sd_bus_message *m) {
                            check(sd_bus_message_append(m, "s", owner.c_str()), "cannot build call");
                        },
                        .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off)
        print_json(c.out, Json{{"owner", owner}, {"released", true}});
    else
        std::cout << "Released every lease of " << owner << ".\n";
    return kExitOk;
}

int verb_resume(Context &c, const Args &args) {
    const std::string &owner = args[0];
    call_method(c.bus, {.member = "ResumeMachine", .reply_signature = "",
                        .what = "cannot resume " + owner,
                        .append = [&](sd_bus_message *m) {
                            check(sd_bus_message_append(m, "sa{sv}", owner.c_str(), 0), "cannot build call");
                        },
                        .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off)
        print_json(c.out, Json{{"owner", owner}, {"resumed", true}});
    else
        std::cout << "Resumed " << owner << ": its leases are held at the versions it had.\n";
    return kExitOk;
}

// --- cleanup, reload ---------------------------------------------------------

int verb_cleanup(Context &c, const Args &) {
    bool dry = c.options.dry_run;
    Json removed = call_method(c.bus, {.member = "CleanupLeases", .reply_signature = "as",
                                       .what = dry ? "cannot list unused lease files" : "cannot clean up lease files",
                                       .append = [&](sd_bus_message *m) {
                                           check(sd_bus_message_append(m, "b", static_cast<int>(dry)),
                                                 "cannot build call");
                                       },
                                       .timeout = kLongTimeout})[0];
    if (c.out.json != JsonMode::Off) {
        print_json(c.out, Json{{"removed", removed}, {"dry_run", dry}});
        return kExitOk;
    }
    for (const auto &path : removed)
        std::cout << (dry ? "Would remove " : "Removed ") << to_text(path) << "\n";
    print_footer(c.out, removed.size(), "lease file", "lease files", dry ? "would be removed" : "removed");
    return kExitOk;
}

int verb_reload(Context &c, const Args &) {
    call_method(c.bus, {.member = "Reload", .reply_signature = "", .what = "cannot reload the configuration",
                        .timeout = kLongTimeout});
    if (c.out.json != JsonMode::Off)
        print_json(c.out, Json{{"reloaded", true}});
    else
        std::cout << "Reloaded the configuration.\n";
    return kExitOk;
}

constexpr size_t kAny = SIZE_MAX;

const Verb kVerbs[] = {
    {"status", 0, 0, 0, false, true, verb_status},
    {"list", 0, 0, 0, false, true, verb_list},
    {"machines", 0, 0, 0, false, true, verb_machines},
    {"inspect", 1, 1, 0, false, true, verb_inspect},
    {"acquire", 2, 2, kOptShared, true, false, verb_acquire},
    {"release", 2, 2, 0, true, false, verb_release},
    {"register", 2, kAny, kOptGrace, true, false, verb_register},
    {"release-machine", 1, 1, 0, true, false, verb_release_machine},
    {"resume", 1, 1, 0, true, false, verb_resume},
    {"cleanup", 0, 0, kOptDryRun, true, false, verb_cleanup},
    {"reload", 0, 0, 0, true, false, verb_reload},
    {"monitor", 0, 0, 0, false, false, verb_monitor},
};

}  // namespace

const Verb *find_verb(const std::string &name) {
    auto it = std::find_if(std::begin(kVerbs), std::end(kVerbs), [&](const Verb &v) { return name == v.name; });
    return it == std::end(kVerbs) ? nullptr : &*it;
}

std::string absolute_disk(const std::string &disk) {
    if (disk.empty())
        usage_error("a DISK is empty");
    if (disk[0] == '/')
        return disk;
    std::error_code ec;
    auto cwd = std::filesystem::current_path(ec);
    if (ec)
        throw Failure{kExitFailure, "cannot make " + disk + " absolute: " + ec.message()};
    return (cwd / disk).lexically_normal().string();
}

}  // namespace vmleasectl
