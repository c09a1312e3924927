#include "log.hpp"

#include <systemd/sd-journal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace vmlease {
namespace {

std::atomic<int> max_priority{getenv("VMLEASE_DEBUG") ? LOG_DEBUG : LOG_INFO};

// journald sets JOURNAL_STREAM to "dev:ino" of the stream it gave us; only
// when stderr is still that stream is a structured entry the right choice.
bool stderr_is_journal() {
    static const bool is = [] {
        const char *e = getenv("JOURNAL_STREAM");
        if (!e)
            return false;
        unsigned long long dev = 0, ino = 0;
        if (sscanf(e, "%llu:%llu", &dev, &ino) != 2)
            return false;
        struct stat st {};
        if (fstat(STDERR_FILENO, &st) < 0)
            return false;
        return st.st_dev == dev && st.st_ino == ino;
    }();
    return is;
}

}  // namespace

void set_max_log_priority(int priority) { max_priority = priority; }

void log_message(int priority, const std::string &message, std::initializer_list<LogField> fields,
                 const char *message_id) {
    if (priority > max_priority)
        return;
    if (stderr_is_journal()) {
        std::vector<std::string> lines;
        lines.reserve(fields.size() + 4);
        lines.push_back("MESSAGE=" + message);
        lines.push_back("PRIORITY=" + std::to_string(priority));
        lines.push_back("SYSLOG_IDENTIFIER=vmleased");
        if (message_id)
            lines.push_back(std::string("MESSAGE_ID=") + message_id);
        for (const auto &f : fields)
            lines.push_back(std::string("VMLEASE_") + f.key + "=" + f.value);
        std::vector<iovec> iov;
        for (auto &l : lines)
            iov.push_back({l.data(), l.size()});
        sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
        return;
    }
    std::string line = "<" + std::to_string(priority) + ">" + message;
    for (const auto &f : fields)
        if (!f.value.empty())
            line += std::string(" ") + f.key + "=" + f.value;
    line += '\n';
    static std::mutex m;
    std::lock_guard lock(m);
    (void)!write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace vmlease
