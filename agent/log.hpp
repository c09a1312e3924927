// Logging: structured journal entries when stderr is connected to journald,
// "<N>message" lines on stderr otherwise (systemd's syslog-prefix convention).
#pragma once

#include <initializer_list>
#include <string>
#include <syslog.h>

namespace vmlease {

struct LogField {
    const char *key;  // journal field name without the VMLEASE_ prefix, e.g. "OWNER"
    std::string value;
};

// MESSAGE_IDs of the events an admin wants to find in the journal.
namespace message_id {
inline constexpr const char *kLeaseAcquired = "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a01";
inline constexpr const char *kLeaseReleased = "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a02";
inline constexpr const char *kLeaseConflict = "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a03";
inline constexpr const char *kLockFailure = "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a04";
inline constexpr const char *kLockspaceState = "2f1d4c1b6a7e4b0e9a3c6f5e8d7c1a05";
inline constexpr const char *kDeviceAdded = "edeb60e43b384f98a74b3a01968b9a99";
inline constexpr const char *kDeviceRemoved = "eb51c37df22a4b0b94fe15fdd7b7cc2d";
inline constexpr const char *kLockFailureAction = "4a18cd03ea52455abe990a4f3510d6e5";
inline constexpr const char *kWatchdogMissing = "c8207076a2334ec8b856818315ded1b6";
inline constexpr const char *kLeaseCleanup = "1f3f6fc7da9040cc86c19d77b7ad0c82";
inline constexpr const char *kSignalRejected = "8d0c6a7e5b3f4e21a9d4c2b17f60e315";
inline constexpr const char *kMachineUnprotected = "5b9e2d7c0a4f4c1e8f3b6a9d2c7e1f40";
inline constexpr const char *kMachineStale = "c0617dc9aecc446cb1ff4ffce5c5f1b6";
inline constexpr const char *kMachineResumed = "0ddf187efccf428eac2eba91d36d8cbd";
}  // namespace message_id

void log_message(int priority, const std::string &message, std::initializer_list<LogField> fields = {},
                 const char *message_id = nullptr);

inline void log_debug(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_DEBUG, m, f); }
inline void log_info(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_INFO, m, f); }
inline void log_notice(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_NOTICE, m, f); }
inline void log_warning(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_WARNING, m, f); }
inline void log_error(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_ERR, m, f); }
inline void log_crit(const std::string &m, std::initializer_list<LogField> f = {}) { log_message(LOG_CRIT, m, f); }

// Messages above this priority are dropped (default LOG_INFO; VMLEASE_DEBUG=1 raises it).
void set_max_log_priority(int priority);

}  // namespace vmlease
