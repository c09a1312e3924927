#include "disk_path.hpp"

#include "disk_namer.hpp"

#include <openssl/evp.h>

#include <array>
#include <vector>

namespace vmlease {

std::variant<std::string, PathError> normalise_disk_path(const std::string &path) {
    if (path.empty())
        return PathError{"disk path is empty"};
    if (path.size() > kMaxDiskPathLength)
        return PathError{"disk path is " + std::to_string(path.size()) + " characters long; the limit is " +
                         std::to_string(kMaxDiskPathLength)};
    if (path.front() != '/')
        return PathError{"disk path \"" + path + "\" is not absolute"};
    for (unsigned char c : path)
        if (c < 0x20 || c == 0x7f)
            return PathError{"disk path contains a control character"};

    std::vector<std::string_view> parts;
    std::string_view rest(path);
    while (!rest.empty()) {
        size_t slash = rest.find('/');
        std::string_view part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (part.empty() || part == ".")
            continue;
        if (part == "..") {
            if (!parts.empty())
                parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    if (parts.empty())
        return PathError{"disk path \"" + path + "\" names the root directory"};

    std::string out;
    for (auto part : parts) {
        out += '/';
        out += part;
    }
    return out;
}

bool is_lease_resource_name(const std::string &name) {
    if (name.size() != 32)
        return false;
    for (char c : name)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    return true;
}

std::string lease_resource_name(const std::string &canonical_path) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int len = 0;
    EVP_Digest(canonical_path.data(), canonical_path.size(), digest.data(), &len, EVP_md5(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned i = 0; i < len; i++) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0xf];
    }
    return out;
}

DiskName DiskNamer::named_by_path(const std::string &path) {
    auto normalised = normalise_disk_path(path);
    if (auto *err = std::get_if<PathError>(&normalised))
        return {DiskName::Kind::Invalid, err->message};
    return {DiskName::Kind::Canonical, std::get<std::string>(normalised)};
}

DiskName LexicalDiskNamer::canonical(const std::string &path) const { return named_by_path(path); }

std::vector<std::string> aliases_of(const std::string &identity, const std::string &literal) {
    auto normalised = normalise_disk_path(literal);
    if (auto *lexical = std::get_if<std::string>(&normalised); lexical && *lexical != identity)
        return {*lexical};
    return {};
}

}  // namespace vmlease
