// vmlease configuration: the parsed, validated form of /etc/vmlease/vmlease.yaml
// plus /etc/vmlease/vmlease.d/*.yaml drop-ins.
//
// The model (core/config_model.hpp) is free of yaml-cpp types: the core
// uses it without depending on the parser.
#pragma once

#include "core/config_model.hpp"

#include <stdexcept>
#include <string>

namespace vmlease {

// Every problem in a file is reported with where it is: "file:line:column: message".
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Load `path` and then every `*.yaml` in `<dirname(path)>/vmlease.d/` in
// lexical order; a drop-in's top-level keys replace the main file's (lists
// replace, they are not appended). A missing main file is an error; a missing
// drop-in directory is not. Throws ConfigError on the first problem.
Config load_config(const std::string &path);

// Parse one document from memory; `name` is used in error messages.
Config parse_config(const std::string &yaml_text, const std::string &name);

}  // namespace vmlease
