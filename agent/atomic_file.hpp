// Files the agent keeps in $RUNTIME_DIRECTORY for whoever reads them after a
// crash (the lock-failure helper, the next vmleased) must never be seen half
// written: they are written to a temporary name and renamed.
#pragma once

#include <optional>
#include <string>

namespace vmlease {

// false on failure (errno tells why); the old file then stays as it was.
bool write_file_atomically(const std::string &path, const std::string &content);

// nullopt if the file does not exist; throws std::runtime_error if it exists
// but cannot be read.
std::optional<std::string> read_small_file(const std::string &path);

}  // namespace vmlease
