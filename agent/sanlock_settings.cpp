// The sanlock layer's settings, derived from a configuration: the lease
// files' owner (by default whom the running sanlock daemon runs as), the
// killpath helper and vmlease-holder.
#include "daemon.hpp"
#include "signal_origin.hpp"
#include "version.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace vmlease {
namespace {

// The user and group sanlock runs as unless told otherwise (-U/-G).
constexpr const char *kSanlockUser = "sanlock";

}  // namespace

// The id of a user or group the configuration names. "No such name" is the
// file's error; a lookup that fails (NSS not up yet) is not, and must not
// stop a restart (exit status 78 is never retried).
template <typename Entry, typename Id>
Id id_of(Entry *(*get)(const char *), Id Entry::*id, const std::string &name, const char *key, const char *noun,
         const std::string &where) {
    errno = 0;
    Entry *e = get(name.c_str());
    if (!e && errno != 0 && errno != ENOENT && errno != ESRCH)
        throw std::runtime_error(std::string("cannot look up ") + noun + " \"" + name + "\": " + strerror(errno));
    if (!e)
        throw ConfigError(where + ": " + key + ": no " + noun + " \"" + name + "\" on this host");
    return e->*id;
}

SanlockSettings sanlock_settings_for(const Config &config) {
    SanlockSettings s;
    s.lease_dir = config.lease_dir;
    s.lockspace = config.lockspace;
    s.host_id = config.host_id;
    s.io_timeout = config.io_timeout;
    s.lease_num_hosts = config.lease_max_hosts;
    const std::string where = config.sources.empty() ? std::string("configuration") : config.sources.front();
    // Left unset, lease files belong to whom the running sanlock daemon runs
    // as, so that it can open them: it chowns its socket to that user and
    // group (-U/-G, uname/gname in sanlock.conf, else "sanlock" when that
    // user and group exist). Before sanlock is up, its own default rule.
    struct stat sock {};
    if (stat((sanlock_run_dir_from_env() + "/sanlock.sock").c_str(), &sock) == 0) {
        s.lease_uid = sock.st_uid;
        s.lease_gid = sock.st_gid;
    } else if (struct passwd *pw = getpwnam(kSanlockUser); pw) {
        if (struct group *gr = getgrnam(kSanlockUser); gr) {
            s.lease_uid = pw->pw_uid;
            s.lease_gid = gr->gr_gid;
        }
    }
    if (!config.lease_file_user.empty())
        s.lease_uid = id_of(getpwnam, &passwd::pw_uid, config.lease_file_user, "lease_file_user", "user", where);
    if (!config.lease_file_group.empty())
        s.lease_gid = id_of(getgrnam, &group::gr_gid, config.lease_file_group, "lease_file_group", "group", where);
    s.killpath = config.lockfailure_helper.empty() ? VMLEASE_LOCKFAILURE_HELPER : config.lockfailure_helper;
    // sanlock passes the helper at most 127 bytes of arguments.
    std::string args = runtime_directory();
    s.killpath_args = args.size() < 128 ? args : "";
    s.holder = config.lease_holder.empty() ? VMLEASE_HOLDER : config.lease_holder;
    s.runtime_dir = runtime_directory();
    return s;
}

}  // namespace vmlease
