#include "faultfs.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace vmtest {

FaultFs::FaultFs(const std::string &backing, const std::string &mountpoint, const std::string &log)
    : mountpoint_(mountpoint) {
    std::filesystem::create_directories(backing);
    std::filesystem::create_directories(mountpoint);
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        throw std::runtime_error("pipe failed");
    child_ = Child({required_env("FAULTFS"), backing, mountpoint}, {}, log, -1, out[1]);
    close(out[1]);
    from_ = out[0];
    // "READY" once the kernel's FUSE_INIT is answered.
    std::string got;
    char c;
    pollfd p{from_, POLLIN, 0};
    while (got.find("READY") == std::string::npos && poll(&p, 1, 10000) == 1 && read(from_, &c, 1) == 1)
        got += c;
    if (got.find("READY") == std::string::npos)
        throw std::runtime_error("faultfs did not mount " + mountpoint + ":\n" + read_file(log));
}

FaultFs::~FaultFs() {
    try {
        set("ok");
    } catch (const std::exception &) {
    }
    child_.stop(10s);
    if (from_ >= 0)
        close(from_);
}

void FaultFs::set(const std::string &mode) {
    int fd = open((mountpoint_ + "/.faultfs").c_str(), O_WRONLY | O_CLOEXEC);
    std::string line = mode + "\n";
    bool ok = fd >= 0 && write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (fd >= 0)
        close(fd);
    if (!ok)
        throw std::runtime_error("cannot switch faultfs to " + mode);
}

unsigned FaultFs::hung() const {
    std::string state = read_file(mountpoint_ + "/.faultfs");
    size_t at = state.find("hung=");
    return at == std::string::npos ? 0 : static_cast<unsigned>(std::stoul(state.substr(at + 5)));
}

}  // namespace vmtest
