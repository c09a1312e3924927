#include "lockfailure_plan.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace vmlease {
namespace {

constexpr const char *kHeader = "vmlease-lockfailure-plan 2";

bool known_action(const std::string &a) { return lock_failure_action_from_string(a).has_value(); }

template <typename T> bool parse_number(const std::string &s, T &out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// The helper joins a unit name to a cgroup path: one path component only.
bool valid_unit(const std::string &u) {
    return !u.empty() && u != "." && u != ".." && u.find('/') == std::string::npos;
}

// A file descriptor closed on scope exit.
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0)
            close(fd);
    }
};

[[noreturn]] void fail(const std::string &what, const std::string &path) {
    int e = errno ? errno : EIO;  // before anything else can change it
    throw std::system_error(e, std::generic_category(), what + " " + path);
}

}  // namespace

const LockFailureEffect &LockFailurePlan::Entry::effect() const {
    auto a = lock_failure_action_from_string(action);
    if (!a)
        throw std::invalid_argument("unknown on_lockfailure action \"" + action + "\" in the plan");
    return effect_for(*a);
}

// One line per item; machine names never contain spaces (check_owner_name),
// nor do unit names (systemd escapes them).
std::string format_plan(const LockFailurePlan &plan) {
    std::string out = std::string(kHeader) + "\n";
    if (!plan.bus_address.empty())
        out += "bus " + plan.bus_address + "\n";
    for (const auto &m : plan.machines)
        out += "machine " + m.machine + " " + m.action + " " + std::to_string(m.leader) + " " +
               std::to_string(m.start_time) + " " + (m.unit.empty() ? "-" : m.unit) + "\n";
    return out;
}

std::optional<LockFailurePlan> parse_plan(const std::string &text) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != kHeader)
        return std::nullopt;
    LockFailurePlan plan;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string kind, extra;
        words >> kind;
        if (kind == "bus") {
            if (!(words >> plan.bus_address) || words >> extra)
                return std::nullopt;
        } else if (kind == "machine") {
            LockFailurePlan::Entry e;
            std::string leader, start;
            if (!(words >> e.machine >> e.action >> leader >> start >> e.unit) || words >> extra ||
                !known_action(e.action) || !parse_number(leader, e.leader) || !parse_number(start, e.start_time))
                return std::nullopt;
            if (e.unit == "-")
                e.unit.clear();
            else if (!valid_unit(e.unit))
                return std::nullopt;
            plan.machines.push_back(e);
        } else if (!kind.empty()) {
            return std::nullopt;
        }
    }
    return plan;
}

std::optional<uint64_t> process_start_time(pid_t pid) {
    if (pid <= 0)
        return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat))
        return std::nullopt;
    // "PID (COMM) STATE ...": COMM may hold anything, so count from its last ')'.
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos)
        return std::nullopt;
    std::istringstream fields(stat.substr(close_paren + 1));
    std::string field;
    for (int i = 3; i <= 22; i++)
        if (!(fields >> field))
            return std::nullopt;
    uint64_t start = 0;
    if (!parse_number(field, start))
        return std::nullopt;
    return start;
}

std::set<std::string> read_acted(const std::string &runtime_dir) {
    std::string path = runtime_dir + "/" + kLockFailureActedFile;
    Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) {
        if (errno == ENOENT)
            return {};
        fail("cannot open", path);
    }
    if (flock(f.fd, LOCK_SH) < 0)
        fail("cannot lock", path);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(f.fd, buf, sizeof buf)) > 0)
        text.append(buf, static_cast<size_t>(n));
    if (n < 0)
        fail("cannot read", path);
    std::set<std::string> acted;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string kind, machine;
        if (words >> kind >> machine && kind == "machine")
            acted.insert(machine);
    }
    return acted;
}

void record_acted(const std::string &runtime_dir, const std::string &machine, const std::string &action) {
    std::string path = runtime_dir + "/" + kLockFailureActedFile;
    Fd f{open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)};
    if (f.fd < 0)
        fail("cannot open", path);
    if (flock(f.fd, LOCK_EX) < 0)
        fail("cannot lock", path);
    std::string line = "machine " + machine + " " + action + "\n";
    if (write(f.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        fail("cannot write", path);
}

void clear_acted(const std::string &runtime_dir) {
    std::string path = runtime_dir + "/" + kLockFailureActedFile;
    if (unlink(path.c_str()) < 0 && errno != ENOENT)
        fail("cannot remove", path);
}

// Where the unified (v2) cgroup hierarchy is mounted: /sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host; "" if nowhere.
std::string cgroup2_root() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
        auto dash = line.find(" - ");
        if (dash == std::string::npos)
            continue;
        std::istringstream after(line.substr(dash + 3)), before(line.substr(0, dash));
        std::string fstype, skip, root, mountpoint;
        after >> fstype;
        before >> skip >> skip >> skip >> root >> mountpoint;
        if (fstype == "cgroup2" && root == "/")
            return mountpoint;
    }
    return "";
}

}  // namespace vmlease
