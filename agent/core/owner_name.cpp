#include "owner_name.hpp"

namespace vmlease {

std::string quoted(const std::string &value) {
    constexpr size_t kMax = 64;
    return "\"" + (value.size() > kMax ? value.substr(0, kMax) + "..." : value) + "\"";
}

std::string check_owner_name(const std::string &owner) {
    if (owner.empty())
        return "owner is empty";
    if (owner.size() > kMaxOwnerLength)
        return "owner is " + std::to_string(owner.size()) + " characters long; the limit is " +
               std::to_string(kMaxOwnerLength);
    if (owner.front() == '-' || owner.front() == '.')
        return "owner " + quoted(owner) + " starts with '" + owner.front() + "'";
    for (unsigned char c : owner) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.' || c == ':' || c == '@' || c == '+';
        if (!ok)
            return "owner " + quoted(owner) + " contains a character other than A-Z a-z 0-9 - _ . : @ +";
    }
    return {};
}

std::string join_owners(const std::vector<std::string> &owners, const char *separator) {
    std::string out;
    for (const auto &o : owners)
        out += (out.empty() ? "" : separator) + o;
    return out;
}

}  // namespace vmlease
