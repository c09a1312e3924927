// The words the configuration and the D-Bus API use for each enumeration:
// one table per enum serves to_string, *_from_string and the parser's
// "expected one of ..." text, so the three can never disagree.
#pragma once

#include "config_model.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <string>

namespace vmlease::spellings {

template <class E>
struct Spelling {
    E value;
    const char *name;
};

inline constexpr std::array<Spelling<LeaseMode>, 3> kLeaseModes{{
    {LeaseMode::Exclusive, "exclusive"},
    {LeaseMode::Shared, "shared"},
    {LeaseMode::None, "none"},
}};

// A rule disk's `identity`: true for "path" (DiskRule::identity_is_path).
inline constexpr std::array<Spelling<bool>, 2> kIdentities{{
    {false, "auto"},
    {true, "path"},
}};

inline constexpr std::array<Spelling<ConflictAction>, 3> kConflictActions{{
    {ConflictAction::Terminate, "terminate"},
    {ConflictAction::Warn, "warn"},
    {ConflictAction::Pause, "pause"},
}};

inline constexpr std::array<Spelling<UnprotectedAction>, 3> kUnprotectedActions{{
    {UnprotectedAction::Terminate, "terminate"},
    {UnprotectedAction::Pause, "pause"},
    {UnprotectedAction::Warn, "warn"},
}};

inline constexpr std::array<Spelling<LockFailureAction>, 5> kLockFailureActions{{
    {LockFailureAction::Poweroff, "poweroff"},
    {LockFailureAction::Terminate, "terminate"},
    {LockFailureAction::Pause, "pause"},
    {LockFailureAction::Ignore, "ignore"},
    {LockFailureAction::Restart, "restart"},
}};

template <class E, std::size_t N>
const char *name_of(const std::array<Spelling<E>, N> &table, E value) {
    for (const auto &s : table)
        if (s.value == value) return s.name;
    return "unknown";  // only reachable for a value cast from an int
}

template <class E, std::size_t N>
std::optional<E> value_of(const std::array<Spelling<E>, N> &table, const std::string &name) {
    for (const auto &s : table)
        if (name == s.name) return s.value;
    return std::nullopt;
}

template <class E, std::size_t N>
std::string choices_of(const std::array<Spelling<E>, N> &table) {
    std::string out;
    for (const auto &s : table) {
        if (!out.empty()) out += ", ";
        out += s.name;
    }
    return out;
}

}  // namespace vmlease::spellings
