#include "udev_testbed.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace vmtest {

UdevTestbed::UdevTestbed(const std::string &dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        throw std::runtime_error("pipe failed");
    child_ = Child({"/usr/bin/python3", required_env("UDEV_TESTBED"), dir}, {}, dir + "/udev-testbed.log", in[0],
                   out[1]);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    std::istringstream first(command(""));
    std::string word;
    while (first >> word) {
        if (word == "root")
            first >> root_;
        else if (word == "db")
            first >> db_;
    }
    if (root_.empty() || db_.empty())
        throw std::runtime_error("udev-testbed did not start:\n" + read_file(dir + "/udev-testbed.log"));
}

UdevTestbed::~UdevTestbed() {
    if (to_ >= 0) {
        (void)!write(to_, "quit\n", 5);
        close(to_);
    }
    child_.wait(10s);
    if (from_ >= 0)
        close(from_);
}

// Send one command (none for the start-up banner) and read the reply: the
// banner is two lines, every reply one.
std::string UdevTestbed::command(const std::string &line) {
    if (!line.empty() && write(to_, (line + "\n").data(), line.size() + 1) != static_cast<ssize_t>(line.size() + 1))
        throw std::runtime_error("udev-testbed is gone");
    std::string reply;
    unsigned lines_wanted = line.empty() ? 2 : 1, lines = 0;
    while (lines < lines_wanted) {
        pollfd p{from_, POLLIN, 0};
        if (poll(&p, 1, 120000) <= 0)
            throw std::runtime_error("udev-testbed did not answer " + line);
        char c;
        if (read(from_, &c, 1) != 1)
            throw std::runtime_error("udev-testbed exited:\n" + read_file(dir_ + "/udev-testbed.log"));
        reply += c;
        lines += c == '\n';
    }
    if (!line.empty() && reply.rfind("ok", 0) != 0)
        throw std::runtime_error("udev-testbed: " + line + ": " + reply);
    return reply;
}

EmulatedDisk UdevTestbed::add(const std::string &name, bool tagged, const std::string &extra) {
    unsigned minor = 16 * static_cast<unsigned>(name.back() - 'a');
    std::string scsi = "0:0:" + std::to_string(minor / 16) + ":0";
    std::istringstream reply(command("add " + name + " 8 " + std::to_string(minor) + " " + scsi + " VMLEASE_" + name +
                                     (tagged ? " tagged" : " untagged") + (extra.empty() ? "" : " " + extra)));
    EmulatedDisk d;
    std::string ok;
    d.name = name;
    reply >> ok >> d.by_path >> d.by_id;
    return d;
}

void UdevTestbed::remove(const std::string &name) { command("remove " + name); }

double UdevTestbed::burst(unsigned n, const std::string &a, const std::string &b) {
    std::istringstream reply(command("burst " + std::to_string(n) + " " + a + " " + b));
    std::string ok;
    double seconds = 0;
    reply >> ok >> seconds;
    return seconds;
}

void UdevTestbed::wait_for_listeners(unsigned n) {
    std::istringstream reply(command("listeners " + std::to_string(n)));
    std::string ok;
    unsigned got = 0;
    reply >> ok >> got;
    if (got < n)
        throw std::runtime_error("no udev monitor is listening in the testbed");
}

std::map<std::string, std::string> UdevTestbed::agent_env() const {
    const char *asan = getenv("ASAN_OPTIONS");
    return {{"UMOCKDEV_DIR", root_},
            {"LD_PRELOAD", "libumockdev-preload.so.0"},
            // The sanitizer runtime cannot be first in the preload list here.
            {"ASAN_OPTIONS", std::string(asan ? asan : "") + ":verify_asan_link_order=0"}};
}

std::vector<std::string> UdevTestbed::agent_wrapper() const {
    // /run gets an overlay (the host's /run stays untouched, /run/udev is
    // created in the upper layer), then the testbed's database goes on it.
    std::string ovl = dir_ + "/run-overlay";
    std::filesystem::create_directories(ovl + "/upper/udev");
    std::filesystem::create_directories(ovl + "/work");
    std::string script = "mount -t overlay overlay -o lowerdir=/run,upperdir=" + ovl + "/upper,workdir=" + ovl +
                         "/work /run && mount --bind " + db_ + " /run/udev && exec \"$@\"";
    return {"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh"};
}

}  // namespace vmtest
