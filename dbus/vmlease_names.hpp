// The bus names every part of vmlease agrees on: the daemon that owns them,
// vmleasectl and the tests that call them. The interfaces themselves are the
// XML files beside this one.
#pragma once

namespace vmlease::names {

inline constexpr const char *kBusName = "org.vmlease";
inline constexpr const char *kManagerPath = "/org/vmlease";
inline constexpr const char *kManagerInterface = "org.vmlease.Manager";
inline constexpr const char *kLeasePathPrefix = "/org/vmlease/lease/";

}  // namespace vmlease::names
