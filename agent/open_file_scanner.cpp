#include "open_file_scanner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

namespace vmlease {
namespace {

std::string cgroup_path_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("0::", 0) == 0)
            return line.substr(3);
    return {};
}

std::vector<pid_t> read_procs(const std::string &file) {
    std::vector<pid_t> out;
    std::ifstream f(file);
    pid_t pid;
    while (f >> pid && out.size() < kMaxScannedProcesses)
        out.push_back(pid);
    return out;
}

// The access mode the fd was opened with, from "flags:\t0100002" in fdinfo.
bool opened_for_writing(const std::string &fdinfo) {
    std::ifstream f(fdinfo);
    std::string key;
    while (f >> key) {
        if (key == "flags:") {
            std::string octal;
            f >> octal;
            int flags = static_cast<int>(std::stol(octal, nullptr, 8));
            int mode = flags & O_ACCMODE;
            return mode == O_WRONLY || mode == O_RDWR;
        }
        std::string rest;
        std::getline(f, rest);
    }
    return false;
}

}  // namespace

std::vector<pid_t> machine_processes(pid_t leader, const std::string &cgroup_root) {
    std::string path = cgroup_path_of(leader);
    // A machine's cgroup is its scope, never the root; the unified hierarchy
    // is at the root (cgroup v2) or below unified/ (hybrid layout).
    if (!path.empty() && path != "/") {
        for (const char *sub : {"", "/unified"}) {
            auto procs = read_procs(cgroup_root + sub + path + "/cgroup.procs");
            if (!procs.empty())
                return procs;
        }
    }
    return {leader};
}

std::vector<OpenFile> open_files(const std::vector<pid_t> &pids, const std::string &proc_root) {
    std::map<std::string, OpenFile> found;  // by path
    size_t scanned = 0;
    for (pid_t pid : pids) {
        std::string fd_dir = proc_root + "/" + std::to_string(pid) + "/fd";
        DIR *dir = opendir(fd_dir.c_str());
        if (!dir)
            continue;
        while (struct dirent *e = readdir(dir)) {
            if (e->d_name[0] == '.' || ++scanned > kMaxScannedFiles)
                continue;
            std::string link = fd_dir + "/" + e->d_name;
            char target[4096];
            ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
            if (n <= 0 || target[0] != '/')
                continue;  // sockets, pipes, anon inodes
            std::string path(target, static_cast<size_t>(n));
            if (path.size() > 10 && path.compare(path.size() - 10, 10, " (deleted)") == 0)
                continue;
            struct stat st {};
            if (stat(link.c_str(), &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
                continue;
            bool writable = opened_for_writing(proc_root + "/" + std::to_string(pid) + "/fdinfo/" + e->d_name);
            OpenFile &f = found[path];
            if (f.path.empty() || (writable && !f.writable)) {
                f.pid = pid;  // where to look at it again: a process holding it as it is used
                f.fd = e->d_name;
            }
            f.path = path;
            f.writable = f.writable || writable;
        }
        closedir(dir);
    }
    std::vector<OpenFile> out;
    for (auto &[path, f] : found)
        out.push_back(std::move(f));
    return out;
}

}  // namespace vmlease
