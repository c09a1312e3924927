// vmleasectl: how results reach the user (tables, JSON, the pager).
#pragma once

#include "cli.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace vmleasectl {

struct Output {
    JsonMode json = JsonMode::Off;
    bool legend = true;
    bool colors = false;  // stdout was a terminal when we started (before any pager)
};

// Decided once, before a pager replaces stdout.
Output make_output(const Options &options);

struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

// Columns as wide as their content, one space apart; header in bold on a terminal.
void print_table(const Output &out, const Table &table);
// "N leases listed." after a blank line, unless --no-legend.
void print_footer(const Output &out, size_t count, const char *singular, const char *plural, const char *what);
void print_json(const Output &out, const Json &value, bool force_one_line = false);

std::string bold(const Output &out, const std::string &s);
std::string highlight(const Output &out, const std::string &s, const char *ansi);
// A value for "key=value" text: as is, or in double quotes when it has blanks or quotes.
std::string quote_if_needed(const std::string &s);
// "LeaseDirectory" -> "lease_directory"
std::string snake_case(const std::string &name);
// A JSON scalar as plain text (strings without quotes).
std::string to_text(const Json &value);

// $SYSTEMD_PAGER, else $PAGER, else less -FRSXMK, when stdout is a terminal.
// In secure mode (see $SYSTEMD_PAGERSECURE in vmleasectl(1)) only less, with
// LESSSECURE=1.
class Pager {
public:
    Pager() = default;
    Pager(const Pager &) = delete;
    Pager &operator=(const Pager &) = delete;
    ~Pager();
    void open();

private:
    pid_t pid_ = -1;
};

}  // namespace vmleasectl
