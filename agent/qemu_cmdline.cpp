#include "qemu_cmdline.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace vmlease {
namespace {

// qemu's own JSON parser gives up at this nesting depth (MAX_NESTING), so no
// -blockdev qemu accepted is deeper; it also bounds the scanner's stack.
constexpr size_t kMaxJsonDepth = 1024;

// Paths found so far, in first-seen order, each once, capped in number.
class PathSink {
public:
    void add(std::string_view path) {
        // Only local absolute paths name a file a lease can guard. Protocol
        // forms ("nbd:", "rbd:", "iscsi://", "json:{...}") never start with
        // '/', so this one test also keeps all of them out.
        if (full() || path.empty() || path.front() != '/') return;
        if (std::find(paths_.begin(), paths_.end(), path) != paths_.end()) return;
        paths_.emplace_back(path);
    }
    bool full() const { return paths_.size() >= kMaxQemuDiskPaths; }
    std::vector<std::string> take() { return std::move(paths_); }

private:
    std::vector<std::string> paths_;
};

enum class OptionKind { None, Drive, Blockdev, PlainFile };

OptionKind option_kind(std::string_view arg) {
    // qemu treats "--foo" exactly like "-foo"; "-foo=value" is no spelling it
    // knows, so such an argument is an unknown word, not an option.
    if (arg.size() < 2 || arg[0] != '-') return OptionKind::None;
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    if (arg == "drive") return OptionKind::Drive;
    if (arg == "blockdev") return OptionKind::Blockdev;
    // Legacy options whose argument is the file name itself, unescaped.
    static constexpr std::array<std::string_view, 10> kPlainFileOptions = {
        "hda", "hdb", "hdc", "hdd", "cdrom", "fda", "fdb", "mtdblock", "sd", "pflash"};
    if (std::find(kPlainFileOptions.begin(), kPlainFileOptions.end(), arg) != kPlainFileOptions.end())
        return OptionKind::PlainFile;
    return OptionKind::None;
}

// Calls fn(key, value) for each element of qemu's "key=value,key=value" option
// syntax (QemuOpts for -drive, keyval for -blockdev; they agree on this much).
// A comma inside a value is written ",,"; keys cannot contain one. Elements
// without '=' (flags such as "readonly", -blockdev's implied driver) carry no
// file name and are skipped.
template <typename Fn>
void for_each_keyval(std::string_view s, Fn &&fn) {
    size_t i = 0;
    while (i < s.size()) {
        const size_t name_end = s.find_first_of("=,", i);
        if (name_end == std::string_view::npos) return;
        if (s[name_end] == ',') {
            i = name_end + 1;
            continue;
        }
        std::string value;
        size_t j = name_end + 1;
        while (j < s.size()) {
            if (s[j] == ',') {
                if (j + 1 >= s.size() || s[j + 1] != ',') break;
                ++j;  // ",," stands for one literal comma
            }
            value += s[j++];
        }
        fn(s.substr(i, name_end - i), value);
        i = j + 1;
    }
}

// "filename", "file.filename", "backing.file.filename": the file name of the
// node itself or of one given inline below it.
bool is_filename_key(std::string_view key) {
    constexpr std::string_view kFilename = "filename";
    return key == kFilename || (key.ends_with(kFilename) && key.size() > kFilename.size() &&
                                key[key.size() - kFilename.size() - 1] == '.');
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
        return;
    }
    const int extra = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;  // continuation bytes
    static constexpr unsigned char kLead[] = {0x00, 0xC0, 0xE0, 0xF0};
    out += static_cast<char>(kLead[extra] | (cp >> (6 * extra)));
    for (int k = extra - 1; k >= 0; --k) out += static_cast<char>(0x80 | ((cp >> (6 * k)) & 0x3F));
}

// A strict JSON reader just capable enough to find every object member named
// "filename" whose value is a string. It keeps an explicit stack instead of
// recursing, because the nesting depth comes from a command line we do not
// trust, and it fails instead of guessing: a malformed document yields nothing.
class JsonFilenameScanner {
public:
    explicit JsonFilenameScanner(std::string_view s) : s_(s) {}

    std::optional<std::vector<std::string>> scan() {
        enum class Want { Value, ValueOrClose, Key, KeyOrClose, Colon, CommaOrClose };
        std::vector<char> open;  // '{' or '[' for each container we are inside
        std::vector<std::string> found;
        bool member_is_filename = false;
        Want want = Want::Value;
        if (!at('{')) return std::nullopt;  // -blockdev takes an object, nothing else
        for (;;) {
            skip_whitespace();
            if (i_ >= s_.size()) return std::nullopt;  // truncated
            const char c = s_[i_];
            const char close = open.empty() ? '\0' : open.back() == '{' ? '}' : ']';
            const bool may_close = want == Want::ValueOrClose || want == Want::KeyOrClose || want == Want::CommaOrClose;
            if (may_close && c == close) {
                ++i_;
                open.pop_back();
            } else if (want == Want::CommaOrClose || want == Want::Colon) {
                if (c != (want == Want::Colon ? ':' : ',')) return std::nullopt;
                ++i_;
                want = (want == Want::Colon || close == ']') ? Want::Value : Want::Key;
                continue;
            } else if (want == Want::Key || want == Want::KeyOrClose) {
                std::string key;
                if (c != '"' || !read_string(key)) return std::nullopt;
                member_is_filename = key == "filename";
                want = Want::Colon;
                continue;
            } else if (c == '{' || c == '[') {
                if (open.size() >= kMaxJsonDepth) return std::nullopt;
                open.push_back(c);
                ++i_;
                want = c == '{' ? Want::KeyOrClose : Want::ValueOrClose;
                continue;
            } else if (c == '"') {
                std::string value;
                if (!read_string(value)) return std::nullopt;
                // Only a member's value: a string inside an array has no name.
                if (member_is_filename && close == '}') found.push_back(std::move(value));
            } else if (!((c == '-' || is_digit(c)) ? skip_number() : skip_literal())) {
                return std::nullopt;
            }
            // Here a value, possibly a whole container, has just ended.
            if (open.empty()) {
                skip_whitespace();
                if (i_ != s_.size()) return std::nullopt;  // trailing garbage
                return found;
            }
            want = Want::CommaOrClose;
        }
    }

private:
    bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }

    void skip_whitespace() {
        while (at(' ') || at('\t') || at('\n') || at('\r')) ++i_;
    }

    bool skip_digits() {
        const size_t start = i_;
        while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
        return i_ > start;
    }

    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    bool skip_number() {
        if (at('-')) ++i_;
        if (at('0')) {
            ++i_;
        } else if (!skip_digits()) {
            return false;
        }
        if (at('.')) {
            ++i_;
            if (!skip_digits()) return false;
        }
        if (at('e') || at('E')) {
            ++i_;
            if (at('+') || at('-')) ++i_;
            if (!skip_digits()) return false;
        }
        return true;
    }

    bool skip_literal() {
        for (std::string_view literal : {"true", "false", "null"}) {
            if (s_.substr(i_).starts_with(literal)) {
                i_ += literal.size();
                return true;
            }
        }
        return false;
    }

    bool read_hex4(uint32_t &out) {
        if (s_.size() - i_ < 4) return false;
        out = 0;
        for (int k = 0; k < 4; ++k) {
            const int digit = hex_value(s_[i_++]);
            if (digit < 0) return false;
            out = out * 16 + static_cast<uint32_t>(digit);
        }
        return true;
    }

    // After "\u": one code point, or a surrogate pair, appended as UTF-8.
    bool read_escaped_code_point(std::string &out) {
        uint32_t cp = 0, low = 0;
        if (!read_hex4(cp) || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;  // lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!s_.substr(i_).starts_with("\\u")) return false;
            i_ += 2;
            if (!read_hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (cp == 0) return false;  // qemu refuses \u0000, and no path holds a NUL
        append_utf8(out, cp);
        return true;
    }

    // At the opening quote; leaves i_ after the closing one.
    bool read_string(std::string &out) {
        static constexpr std::string_view kEscape = "\"\\/bfnrt", kMeaning = "\"\\/\b\f\n\r\t";
        ++i_;
        while (i_ < s_.size()) {
            const char c = s_[i_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false;  // raw control character
            if (c != '\\') {
                out += c;
            } else if (at('u')) {
                ++i_;
                if (!read_escaped_code_point(out)) return false;
            } else {
                const size_t k = i_ < s_.size() ? kEscape.find(s_[i_++]) : std::string_view::npos;
                if (k == std::string_view::npos) return false;
                out += kMeaning[k];
            }
        }
        return false;  // unterminated
    }

    std::string_view s_;
    size_t i_ = 0;
};

void collect(OptionKind kind, const std::string &value, PathSink &sink) {
    switch (kind) {
    case OptionKind::PlainFile:
        sink.add(value);
        break;
    case OptionKind::Drive:
        // For -drive, "file" is the image's file name.
        for_each_keyval(value, [&](std::string_view key, const std::string &v) {
            if (key == "file" || is_filename_key(key)) sink.add(v);
        });
        break;
    case OptionKind::Blockdev:
        if (value.starts_with('{')) {  // qemu's own test for the JSON form
            if (auto found = JsonFilenameScanner(value).scan()) {
                for (const std::string &path : *found) sink.add(path);
            }
        } else {
            // For -blockdev, "file" names another node, never a file.
            for_each_keyval(value, [&](std::string_view key, const std::string &v) {
                if (is_filename_key(key)) sink.add(v);
            });
        }
        break;
    case OptionKind::None:
        break;
    }
}

}  // namespace

std::vector<std::string> qemu_disk_paths(const std::vector<std::string> &argv) {
    PathSink sink;
    try {
        // Like qemu, an option takes the next argument as its value whatever
        // it looks like, and argv[0] is never an option.
        for (size_t i = 1; i + 1 < argv.size() && !sink.full(); ++i) {
            const OptionKind kind = option_kind(argv[i]);
            if (kind == OptionKind::None) continue;
            const std::string &value = argv[++i];
            if (value.size() <= kMaxQemuArgLength) collect(kind, value, sink);
        }
    } catch (...) {
        // Out of memory at worst: what was found is still worth a lease.
    }
    return sink.take();
}

std::vector<std::string> split_cmdline(const std::string &raw) {
    std::vector<std::string> argv;
    try {
        size_t start = 0;
        while (start < raw.size()) {
            size_t end = raw.find('\0', start);
            if (end == std::string::npos) end = raw.size();  // no trailing NUL
            argv.emplace_back(raw, start, end - start);
            start = end + 1;
        }
    } catch (...) {
        // Out of memory: return the arguments split so far.
    }
    return argv;
}

}  // namespace vmlease
