#include "output.hpp"

#include <fcntl.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

namespace vmleasectl {
namespace {

// Display width of UTF-8 text: code points (good enough for paths and names).
size_t width(const std::string &s) {
    return std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

std::vector<size_t> column_widths(const Table &t, bool with_header) {
    std::vector<size_t> w(t.header.size(), 0);
    for (size_t i = 0; with_header && i < w.size(); i++)
        w[i] = width(t.header[i]);
    for (const auto &row : t.rows)
        for (size_t i = 0; i < w.size() && i < row.size(); i++)
            w[i] = std::max(w[i], width(row[i]));
    return w;
}

std::string format_row(const std::vector<std::string> &cells, const std::vector<size_t> &w) {
    std::string line;
    for (size_t i = 0; i < w.size(); i++) {
        const std::string cell = i < cells.size() ? cells[i] : "";
        line += cell;
        if (i + 1 < w.size())
            line += std::string(w[i] - width(cell) + 1, ' ');
    }
    return line;
}

bool env_set(const char *name) {
    const char *v = getenv(name);
    return v && *v;
}

// systemd's parse_boolean(): the same words mean the same in both variables.
std::optional<bool> parse_boolean(const std::string &v) {
    auto is = [&](std::initializer_list<const char *> words) {
        return std::any_of(words.begin(), words.end(), [&](const char *w) { return strcasecmp(v.c_str(), w) == 0; });
    };
    if (is({"1", "yes", "y", "true", "t", "on"}))
        return true;
    if (is({"0", "no", "n", "false", "f", "off"}))
        return false;
    return std::nullopt;
}

// Whether the pager must run in secure mode (CVE-2023-26604): a user allowed
// "sudo vmleasectl" must not get a root shell from less's "!sh". Set
// explicitly by $VMLEASE_PAGERSECURE, else $SYSTEMD_PAGERSECURE; if neither
// is set, on unless we run as the owner of our own login session, i.e. not
// through sudo, pkexec or su, and not from a service or cron job.
bool pager_secure() {
    for (const char *var : {"VMLEASE_PAGERSECURE", "SYSTEMD_PAGERSECURE"}) {
        const char *v = secure_getenv(var);
        if (!v)
            continue;
        if (auto b = parse_boolean(v))
            return *b;
        std::cerr << "vmleasectl: $" << var << " is not a boolean (\"" << v << "\"), assuming true" << std::endl;
        return true;
    }
    uid_t uid;
    return sd_pid_get_owner_uid(0, &uid) < 0 || uid != getuid() || uid != geteuid();
}

// The pager command, or "" for none.
std::string pager_command(bool secure) {
    const char *cmd = getenv("SYSTEMD_PAGER");
    if (!cmd)
        cmd = getenv("PAGER");
    if (!cmd)
        return "less";
    // Only less honours $LESSSECURE, and a $PAGER set for a user may be kept
    // by sudo: another pager could run anything as root. Not less in its
    // place either, as the user chose not to have less.
    if (strcmp(cmd, "cat") == 0 || (secure && strcmp(cmd, "less") != 0))
        return "";
    return cmd;
}

[[noreturn]] void exec_pager(const std::string &cmd, bool secure) {
    setenv("LESS", "FRSXMK", 0);
    // No shell commands, editor, log files or examining other files in less.
    if (secure)
        setenv("LESSSECURE", "1", 1);
    if (cmd != "less")
        execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    execlp("less", "less", "-FRSXMK", nullptr);
    // more has "!" too, and no secure mode.
    if (!secure)
        execlp("more", "more", nullptr);
    // No pager at all: copy through.
    char buf[4096];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0)
        if (write(STDOUT_FILENO, buf, n) != n)
            break;
    _exit(0);
}

}  // namespace

Output make_output(const Options &options) {
    Output out;
    out.json = options.json;
    out.legend = options.legend;
    const char *term = getenv("TERM");
    out.colors = isatty(STDOUT_FILENO) && !env_set("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
    return out;
}

void print_table(const Output &out, const Table &table) {
    auto w = column_widths(table, out.legend);
    if (out.legend)
        std::cout << bold(out, format_row(table.header, w)) << "\n";
    for (const auto &row : table.rows)
        std::cout << format_row(row, w) << "\n";
}

void print_footer(const Output &out, size_t count, const char *singular, const char *plural, const char *what) {
    if (out.legend)
        std::cout << "\n" << count << " " << (count == 1 ? singular : plural) << " " << what << ".\n";
}

void print_json(const Output &out, const Json &value, bool force_one_line) {
    int indent = out.json == JsonMode::Pretty && !force_one_line ? 2 : -1;
    std::cout << value.dump(indent, ' ', false, Json::error_handler_t::replace) << "\n";
}

std::string highlight(const Output &out, const std::string &s, const char *ansi) {
    return out.colors ? std::string(ansi) + s + "\x1b[0m" : s;
}

std::string bold(const Output &out, const std::string &s) { return highlight(out, s, "\x1b[1m"); }

std::string quote_if_needed(const std::string &s) {
    if (!s.empty() && s.find_first_of(" \t\n\"'\\") == std::string::npos)
        return s;
    std::string q = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            q += '\\';
        q += c == '\n' ? 'n' : c;
    }
    return q + "\"";
}

std::string snake_case(const std::string &name) {
    std::string out;
    for (size_t i = 0; i < name.size(); i++) {
        char c = name[i];
        bool upper = c >= 'A' && c <= 'Z';
        bool after_lower = i > 0 && !(name[i - 1] >= 'A' && name[i - 1] <= 'Z');
        if (upper && after_lower)
            out += '_';
        out += upper ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return out;
}

std::string to_text(const Json &value) {
    if (value.is_string())
        return value.get<std::string>();
    if (value.is_array() && std::none_of(value.begin(), value.end(), [](const Json &v) { return v.is_structured(); })) {
        std::string joined;
        for (const auto &v : value)
            joined += (joined.empty() ? "" : ", ") + to_text(v);
        return joined;
    }
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void Pager::open() {
    if (pid_ > 0 || !isatty(STDOUT_FILENO))
        return;
    bool secure = pager_secure();
    std::string cmd = pager_command(secure);
    if (cmd.empty())
        return;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return;  // no pager is no failure
    std::cout.flush();
    pid_ = fork();
    if (pid_ == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[0], STDIN_FILENO);
        exec_pager(cmd, secure);
    }
    if (pid_ > 0)
        dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
}

Pager::~Pager() {
    if (pid_ <= 0)
        return;
    std::cout.flush();
    fflush(stdout);
    close(STDOUT_FILENO);  // the pager sees end of input
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}  // namespace vmleasectl
