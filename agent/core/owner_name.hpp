// Owner names: which names a lease's holder may have (a machine's name, or
// a caller's own), and how a list of them is written.
//
// The rule keeps one owner per word: the state file and the lock-failure
// plan are written one item per line with owners as words.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vmlease {

inline constexpr size_t kMaxOwnerLength = 255;

// Why `owner` is unacceptable, or empty if it is fine: 1-255 characters of
// A-Z a-z 0-9 - _ . : @ +, not starting with '-' or '.'.
std::string check_owner_name(const std::string &owner);

// "a, b" (messages) or "a,b" (Lease.Owner): the owners of one lease.
std::string join_owners(const std::vector<std::string> &owners, const char *separator = ", ");

// A value echoed back in an error message, in quotes and cut, so a
// 10,000-character argument does not come back as a 10,000-character error.
std::string quoted(const std::string &value);

}  // namespace vmlease
