// Parsing and validation of vmlease.yaml and its vmlease.d/*.yaml drop-ins.
//
// yaml-cpp is used only as a tokenizer/tree builder: every type check is done
// here, strictly, because yaml-cpp's own conversions are lenient ("1e3",
// "yes", "0x10" and quoted numbers all convert) and lose the position of the
// offending node.
#include "config.hpp"
#include "core/spellings.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace vmlease {

using namespace spellings;

namespace {

// ---------------------------------------------------------------------------
// Small text helpers.

constexpr std::string_view kCoreTag = "tag:yaml.org,2002:";
constexpr std::size_t kMaxLockspaceBytes = 47;  // sanlock: 48 bytes including NUL

// Values are quoted in messages so that empty strings, trailing blanks and
// control characters are visible in a journal line.
std::string quote(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string join(std::span<const std::string_view> names) {
    std::string out;
    for (auto n : names) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Collapses "//" and "/./" and drops a trailing slash, without resolving ".."
// (that would need the filesystem, and symlinks make it differ).
std::string normalise_absolute(const std::string &path) {
    std::string out;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t end = path.find('/', i);
        if (end == std::string::npos) end = path.size();
        std::string_view part(path.data() + i, end - i);
        if (!part.empty() && part != ".") {
            out += '/';
            out += part;
        }
        i = end + 1;
    }
    return out.empty() ? "/" : out;
}

[[noreturn]] void throw_at(const std::string &file, const YAML::Mark &mark, const std::string &msg) {
    // yaml-cpp marks are 0-based; an unknown position (-1) is reported as 1:1.
    int line = mark.line >= 0 ? mark.line + 1 : 1;
    int column = mark.column >= 0 ? mark.column + 1 : 1;
    throw ConfigError(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + msg);
}

// ---------------------------------------------------------------------------
// Document parsing.

// A node together with where to point at and how to name it in a message.
struct Value {
    YAML::Node node;
    YAML::Mark mark;   // the node, or its key when the node is an empty value
    std::string path;  // e.g. machines[1].disks[0].mode
};

struct Entry {
    std::string key;
    YAML::Mark key_mark;
    Value value;
};

class DocumentParser;

// One top-level key: how to parse it and how a later file replaces it.
struct TopKey {
    std::string_view name;
    void (*parse)(DocumentParser &, const Value &, Config &);
    void (*merge)(Config &, const Config &);
};

// What one file says: parsed values plus which top-level keys it set, so
// that only those replace earlier files' values.
struct Layer {
    Config values;
    std::vector<const TopKey *> present;
};

class DocumentParser {
public:
    explicit DocumentParser(std::string file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const Value &v, const std::string &msg) const {
        throw_at(file_, v.mark, v.path.empty() ? msg : v.path + ": " + msg);
    }

    // Also rejects unknown and duplicate keys, which yaml-cpp 0.7 keeps
    // silently (iteration yields both pairs; operator[] returns the first).
    std::vector<Entry> entries(const Value &v, std::span<const std::string_view> allowed) const {
        if (!v.node.IsMap()) fail(v, "expected a mapping, got " + describe(v.node));
        std::vector<Entry> out;
        for (const auto &kv : v.node) {
            Entry e = entry(v, kv.first, kv.second);
            if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end())
                fail(at_key(e), "unknown key (expected one of " + join(allowed) + ")");
            reject_duplicate(out, e);
            out.push_back(std::move(e));
        }
        return out;
    }

    void require(const Value &v, const std::vector<Entry> &entries, std::string_view key) const {
        for (const auto &e : entries)
            if (e.key == key) return;
        fail(v, "missing required key \"" + std::string(key) + "\"");
    }

    std::vector<Value> items(const Value &v) const {
        if (!v.node.IsSequence()) fail(v, "expected a sequence, got " + describe(v.node));
        std::vector<Value> out;
        for (const auto &item : v.node) {
            std::string path = v.path + "[" + std::to_string(out.size()) + "]";
            out.push_back(value(item, item.Mark(), std::move(path)));
        }
        return out;
    }

    // Any non-null scalar is a string: "1000" is a valid user name. NUL is
    // refused because every string ends up in a C API.
    std::string string(const Value &v) const {
        if (!v.node.IsScalar() || !has_tag(v.node, {"?", "!", "str"}))
            fail(v, "expected a string, got " + describe(v.node));
        const std::string &s = v.node.Scalar();
        if (s.find('\0') != std::string::npos) fail(v, "must not contain a NUL character");
        return s;
    }

    std::string nonempty_string(const Value &v) const {
        std::string s = string(v);
        if (s.empty()) fail(v, "must not be empty");
        return s;
    }

    std::string absolute_path(const Value &v) const {
        std::string s = string(v);
        if (s.empty() || s[0] != '/') fail(v, "expected an absolute path, got " + quote(s));
        return s;
    }

    // Strict decimal: yaml-cpp would also take "1e3"-style junk prefixes,
    // "0x10" and quoted numbers. Leading zeros are refused because YAML 1.1
    // reads them as octal.
    uint32_t integer(const Value &v, uint32_t lo, uint32_t hi) const {
        std::string range = std::to_string(lo) + ".." + std::to_string(hi);
        if (!v.node.IsScalar() || !has_tag(v.node, {"?", "int"}))
            fail(v, "expected an integer in " + range + ", got " + describe(v.node));
        const std::string &s = v.node.Scalar();
        std::string_view digits(s);
        bool negative = false;
        if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
            negative = digits[0] == '-';
            digits.remove_prefix(1);
        }
        if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            fail(v, "expected an integer in " + range + ", got " + describe(v.node));
        if (digits.size() > 1 && digits[0] == '0')
            fail(v, "leading zeros are ambiguous (octal in YAML 1.1), got " + quote(s));
        uint64_t n = 0;
        for (char c : digits) {
            n = n * 10 + static_cast<uint64_t>(c - '0');
            if (n > hi) break;
        }
        if ((negative && n != 0) || n < lo || n > hi) fail(v, "must be in " + range + ", got " + s);
        return static_cast<uint32_t>(n);
    }

    // YAML 1.2 core booleans only: "yes"/"on" are YAML 1.1 and too easy to
    // confuse with strings.
    bool boolean(const Value &v) const {
        static constexpr std::array<std::string_view, 3> yes{"true", "True", "TRUE"};
        static constexpr std::array<std::string_view, 3> no{"false", "False", "FALSE"};
        if (v.node.IsScalar() && has_tag(v.node, {"?", "bool"})) {
            const std::string &s = v.node.Scalar();
            if (std::find(yes.begin(), yes.end(), s) != yes.end()) return true;
            if (std::find(no.begin(), no.end(), s) != no.end()) return false;
        }
        fail(v, "expected true or false, got " + describe(v.node));
    }

    template <class E, std::size_t N>
    E enumeration(const Value &v, const std::array<Spelling<E>, N> &table) const {
        std::string s = string(v);
        if (auto e = value_of(table, s)) return *e;
        fail(v, "expected one of " + choices_of(table) + ", got " + quote(s));
    }

    std::string lockspace(const Value &v) const {
        std::string s = string(v);
        if (s.empty() || s.size() > kMaxLockspaceBytes)
            fail(v, "must be 1.." + std::to_string(kMaxLockspaceBytes) + " bytes, got " + std::to_string(s.size()));
        if (s.find('/') != std::string::npos || std::any_of(s.begin(), s.end(), is_blank))
            fail(v, "must not contain '/' or whitespace, got " + quote(s));
        if (s == "." || s == "..") fail(v, "must be a file name, got " + quote(s));
        return s;
    }

    std::vector<std::string> absolute_globs(const Value &v) const {
        std::vector<std::string> out;
        for (const auto &item : items(v)) {
            std::string s = string(item);
            if (s.empty() || s[0] != '/') fail(item, "expected an absolute glob, got " + quote(s));
            out.push_back(std::move(s));
        }
        return out;
    }

    Discovery discovery(const Value &v) const {
        static constexpr std::array<std::string_view, 3> keys{"open_files", "include", "exclude"};
        Discovery d;
        for (const auto &e : entries(v, keys)) {
            if (e.key == "open_files") d.open_files = boolean(e.value);
            else if (e.key == "include") d.include = absolute_globs(e.value);
            else d.exclude = absolute_globs(e.value);
        }
        return d;
    }

    DiskRule disk(const Value &v) const {
        static constexpr std::array<std::string_view, 3> keys{"path", "mode", "identity"};
        auto es = entries(v, keys);
        require(v, es, "path");
        DiskRule d;
        for (const auto &e : es) {
            if (e.key == "path") d.path = absolute_path(e.value);
            else if (e.key == "identity") d.identity_is_path = enumeration(e.value, kIdentities);
            else d.mode = enumeration(e.value, kLeaseModes);
        }
        return d;
    }

    // The same path twice in one rule is refused: with two modes it would be
    // contradictory, with one it is a copy-paste slip.
    std::vector<DiskRule> disks(const Value &v) const {
        std::vector<DiskRule> out;
        for (const auto &item : items(v)) {
            DiskRule d = disk(item);
            for (const auto &seen : out)
                if (seen.path == d.path) fail(item, "duplicate disk " + quote(d.path));
            out.push_back(std::move(d));
        }
        return out;
    }

    MachineRule machine(const Value &v) const {
        static constexpr std::array<std::string_view, 7> keys{"match",          "disks",
                                                              "on_lockfailure", "on_conflict",
                                                              "on_unprotected", "unprotected_grace",
                                                              "resume_after_lockfailure"};
        auto es = entries(v, keys);
        require(v, es, "match");
        require(v, es, "disks");
        MachineRule m;
        for (const auto &e : es) {
            if (e.key == "match") m.match = nonempty_string(e.value);
            else if (e.key == "disks") m.disks = disks(e.value);
            else if (e.key == "on_lockfailure") m.on_lockfailure = enumeration(e.value, kLockFailureActions);
            else if (e.key == "on_conflict") m.on_conflict = enumeration(e.value, kConflictActions);
            else if (e.key == "on_unprotected") m.on_unprotected = enumeration(e.value, kUnprotectedActions);
            else if (e.key == "resume_after_lockfailure") m.resume_after_lockfailure = boolean(e.value);
            else m.unprotected_grace = integer(e.value, 0, 86400);
        }
        return m;
    }

    std::vector<MachineRule> machines(const Value &v) const {
        std::vector<MachineRule> out;
        for (const auto &item : items(v)) out.push_back(machine(item));
        return out;
    }

    Layer layer(const YAML::Node &root, std::span<const TopKey> table) {
        Layer l;
        // An empty document (or a bare "~") sets nothing; host_id is checked
        // on the merged result.
        if (!root.IsDefined() || root.IsNull()) return l;
        Value top = value(root, root.Mark(), "");
        if (!root.IsMap()) fail(top, "expected a mapping at the top level, got " + describe(root));
        std::vector<std::string_view> names;
        for (const auto &k : table) names.push_back(k.name);
        for (const auto &e : entries(top, names)) {
            const TopKey &k = *std::find_if(table.begin(), table.end(), [&](const TopKey &t) { return t.name == e.key; });
            k.parse(*this, e.value, l.values);
            l.present.push_back(&k);
        }
        return l;
    }

private:
    static Value value(const YAML::Node &node, const YAML::Mark &key, std::string path) {
        return Value{node, value_mark(node, key), std::move(path)};
    }

    // yaml-cpp marks an empty value ("key:") at the next token, usually on
    // the next line; point at the key then. An explicit "~" on the key's line
    // keeps its own mark.
    static YAML::Mark value_mark(const YAML::Node &node, const YAML::Mark &key) {
        YAML::Mark m = node.Mark();
        if (!node.IsNull() || (m.line == key.line && m.column > key.column)) return m;
        return key;
    }

    Entry entry(const Value &map, const YAML::Node &key, const YAML::Node &val) const {
        if (!key.IsScalar()) fail(Value{key, key.Mark(), map.path}, "expected a string key, got " + describe(key));
        std::string path = map.path.empty() ? key.Scalar() : map.path + "." + key.Scalar();
        return Entry{key.Scalar(), key.Mark(), value(val, key.Mark(), std::move(path))};
    }

    static Value at_key(const Entry &e) { return Value{e.value.node, e.key_mark, e.value.path}; }

    void reject_duplicate(const std::vector<Entry> &seen, const Entry &e) const {
        for (const auto &s : seen)
            if (s.key == e.key)
                fail(at_key(e), "duplicate key (first given at line " + std::to_string(s.key_mark.line + 1) +
                                    " column " + std::to_string(s.key_mark.column + 1) + ")");
    }

    static bool has_tag(const YAML::Node &n, std::initializer_list<std::string_view> accepted) {
        const std::string &tag = n.Tag();
        for (auto a : accepted) {
            if (tag == a) return true;
            if (a != "?" && a != "!" && tag.size() == kCoreTag.size() + a.size() && tag.starts_with(kCoreTag) &&
                tag.ends_with(a))
                return true;
        }
        return false;
    }

    static std::string describe(const YAML::Node &n) {
        if (n.IsNull()) return "null";
        if (n.IsSequence()) return "a sequence";
        if (n.IsMap()) return "a mapping";
        const std::string &tag = n.Tag();
        if (tag == "?") return quote(n.Scalar());
        if (tag == "!") return "quoted string " + quote(n.Scalar());
        return quote(n.Scalar()) + " tagged " + tag;
    }

    std::string file_;
};

template <auto Member>
void copy_member(Config &to, const Config &from) {
    to.*Member = from.*Member;
}

// The single list of top-level keys: it drives parsing, the unknown-key
// message and drop-in merging, so adding a key is a one-line change.
const std::array<TopKey, 18> &top_keys() {
    using P = DocumentParser;
    static const std::array<TopKey, 18> table{{
        {"host_id", [](P &p, const Value &v, Config &c) { c.host_id = p.integer(v, 1, 2000); },
         &copy_member<&Config::host_id>},
        {"lease_dir", [](P &p, const Value &v, Config &c) { c.lease_dir = normalise_absolute(p.absolute_path(v)); },
         &copy_member<&Config::lease_dir>},
        {"lockspace", [](P &p, const Value &v, Config &c) { c.lockspace = p.lockspace(v); },
         &copy_member<&Config::lockspace>},
        {"io_timeout", [](P &p, const Value &v, Config &c) { c.io_timeout = p.integer(v, 1, 300); },
         &copy_member<&Config::io_timeout>},
        {"lease_max_hosts", [](P &p, const Value &v, Config &c) { c.lease_max_hosts = p.integer(v, 1, 2000); },
         &copy_member<&Config::lease_max_hosts>},
        {"auto_disk_leases", [](P &p, const Value &v, Config &c) { c.auto_disk_leases = p.boolean(v); },
         &copy_member<&Config::auto_disk_leases>},
        {"on_conflict", [](P &p, const Value &v, Config &c) { c.on_conflict = p.enumeration(v, kConflictActions); },
         &copy_member<&Config::on_conflict>},
        {"on_lockfailure",
         [](P &p, const Value &v, Config &c) { c.on_lockfailure = p.enumeration(v, kLockFailureActions); },
         &copy_member<&Config::on_lockfailure>},
        {"on_unprotected",
         [](P &p, const Value &v, Config &c) { c.on_unprotected = p.enumeration(v, kUnprotectedActions); },
         &copy_member<&Config::on_unprotected>},
        {"unprotected_grace", [](P &p, const Value &v, Config &c) { c.unprotected_grace = p.integer(v, 0, 86400); },
         &copy_member<&Config::unprotected_grace>},
        {"resume_after_lockfailure",
         [](P &p, const Value &v, Config &c) { c.resume_after_lockfailure = p.boolean(v); },
         &copy_member<&Config::resume_after_lockfailure>},
        {"lease_file_user", [](P &p, const Value &v, Config &c) { c.lease_file_user = p.nonempty_string(v); },
         &copy_member<&Config::lease_file_user>},
        {"lease_file_group", [](P &p, const Value &v, Config &c) { c.lease_file_group = p.nonempty_string(v); },
         &copy_member<&Config::lease_file_group>},
        {"lockfailure_helper", [](P &p, const Value &v, Config &c) { c.lockfailure_helper = p.absolute_path(v); },
         &copy_member<&Config::lockfailure_helper>},
        {"lease_holder", [](P &p, const Value &v, Config &c) { c.lease_holder = p.absolute_path(v); },
         &copy_member<&Config::lease_holder>},
        {"discovery", [](P &p, const Value &v, Config &c) { c.discovery = p.discovery(v); },
         &copy_member<&Config::discovery>},
        {"machines", [](P &p, const Value &v, Config &c) { c.machines = p.machines(v); },
         &copy_member<&Config::machines>},
        {"cleanup_min_age", [](P &p, const Value &v, Config &c) { c.cleanup_min_age = p.integer(v, 0, 31536000); },
         &copy_member<&Config::cleanup_min_age>},
    }};
    return table;
}

// Only one document: a second one ("---") would otherwise be ignored
// silently by YAML::Load.
Layer parse_layer(const std::string &text, const std::string &name) {
    std::vector<YAML::Node> docs;
    try {
        docs = YAML::LoadAll(text);
    } catch (const YAML::Exception &e) {
        throw_at(name, e.mark, "YAML syntax error: " + e.msg);
    }
    if (docs.size() > 1) throw_at(name, docs[1].Mark(), "only one YAML document is allowed");
    DocumentParser parser(name);
    return parser.layer(docs.empty() ? YAML::Node() : docs[0], top_keys());
}

void apply(Config &config, const Layer &layer, bool &has_host_id) {
    for (const TopKey *k : layer.present) {
        k->merge(config, layer.values);
        if (k->name == "host_id") has_host_id = true;
    }
}

// open(2)/read(2) rather than ifstream so that the message carries errno.
std::string read_file(const std::string &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
    std::string text;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            throw ConfigError(path + ": cannot read: " + std::strerror(err));
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

bool is_dropin_name(const std::string &name) {
    // Hidden files are skipped like a shell glob would (editor leftovers).
    return name.size() > 5 && name[0] != '.' && name.ends_with(".yaml");
}

// A missing vmlease.d is normal; any other failure to list it is not, since
// silently skipping drop-ins could drop a host's host_id.
std::vector<std::string> dropin_paths(const std::string &main_path) {
    namespace fs = std::filesystem;
    fs::path parent = fs::path(main_path).parent_path();
    std::string dir = (parent.empty() ? std::string(".") : parent.string()) + "/vmlease.d";
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec == std::errc::no_such_file_or_directory) return {};
    if (ec) throw ConfigError(dir + ": cannot read: " + ec.message());
    std::vector<std::string> names;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename().string();
        // A dangling symlink is kept, so that reading it fails loudly.
        std::error_code type_ec;
        if (is_dropin_name(name) && !it->is_directory(type_ec)) names.push_back(name);
    }
    if (ec) throw ConfigError(dir + ": cannot read: " + ec.message());
    std::sort(names.begin(), names.end());  // byte order, independent of locale
    for (auto &n : names) n = dir + "/" + n;
    return names;
}

[[noreturn]] void missing_host_id(const std::string &name) {
    throw_at(name, YAML::Mark(), "host_id is required");
}

// Checked on the merged result: a drop-in may set either key.
void check_host_slots(const Config &config, const std::string &name) {
    if (config.lease_max_hosts != 0 && config.host_id > config.lease_max_hosts)
        throw_at(name, YAML::Mark(),
                 "host_id " + std::to_string(config.host_id) + " is above lease_max_hosts " +
                     std::to_string(config.lease_max_hosts) + ": this host could never take a lease in a file "
                     "vmlease formats with " + std::to_string(config.lease_max_hosts) + " host slots");
}

}  // namespace

// A single document must be complete on its own, so host_id is required here.
Config parse_config(const std::string &yaml_text, const std::string &name) {
    Config config;
    bool has_host_id = false;
    apply(config, parse_layer(yaml_text, name), has_host_id);
    if (!has_host_id) missing_host_id(name);
    check_host_slots(config, name);
    config.sources.push_back(name);
    return config;
}

// Drop-ins let packaging or provisioning set host_id without editing the
// shipped file, so host_id is only required of the merged result.
Config load_config(const std::string &path) {
    Config config;
    bool has_host_id = false;
    apply(config, parse_layer(read_file(path), path), has_host_id);
    config.sources.push_back(path);
    for (const auto &dropin : dropin_paths(path)) {
        apply(config, parse_layer(read_file(dropin), dropin), has_host_id);
        config.sources.push_back(dropin);
    }
    if (!has_host_id) missing_host_id(path);
    check_host_slots(config, path);
    return config;
}

}  // namespace vmlease
