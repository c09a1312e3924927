// /org/vmlease: construction, and what every handler relies on: calls
// remembered under a request id, authorization before anything a caller
// names is looked at, disk paths resolved off the loop, error replies.
// The handlers are in manager_methods.cpp, the answers in manager_publish.cpp.
#include "manager_object.hpp"
#include "manager_internal.hpp"

#include "core/authorization_table.hpp"
#include "core/owner_name.hpp"
#include "core/disk_path.hpp"
#include "udev_disk_namer.hpp"
#include "log.hpp"

#include <cerrno>

namespace vmlease {

using namespace manager_internal;

namespace {

// The identity of a disk a caller named, or an error saying why there is
// none. A device path with no device behind it is refused for taking a
// lease (its identity is what the device says it is); releasing and
// inspecting accept it as written, so that a lease whose LUN went away can
// still be looked at and given back. A device with no stable identity is
// refused (fail closed: hosts could name it differently).
std::variant<DiskName, ApiError> caller_disk(const DiskName &name, const std::string &path, bool taking) {
    switch (name.kind) {
    case DiskName::Kind::Canonical: return name;
    case DiskName::Kind::Invalid: return ApiError{ErrorKind::InvalidArgs, "disk: " + name.value};
    case DiskName::Kind::Unidentified:
        // Releasing and inspecting go by the path as written (a lease taken
        // under it before the identity rule, by an administrator's rule).
        if (!taking)
            if (auto lexical = normalise_disk_path(path); std::holds_alternative<std::string>(lexical))
                return DiskName{DiskName::Kind::Canonical, std::get<std::string>(lexical)};
        return ApiError{ErrorKind::InvalidDisk, name.value};
    case DiskName::Kind::Absent:
        if (taking)
            return ApiError{ErrorKind::InvalidDisk, "disk " + quoted(path) +
                                                        " cannot be resolved: no such device on this host (a block "
                                                        "device's lease is named after the identity the device "
                                                        "reports)"};
        return DiskName{DiskName::Kind::Canonical, name.value};
    }
    return name;
}

}  // namespace

// ---------------------------------------------------------------------------

ManagerObject::ManagerObject(sdbus::IConnection &connection, SignalGate &gate, Requests &requests,
                             const StateView &state, DiskResolver &resolver, std::string version)
    : AdaptorInterfaces(connection, kManagerPath), connection_(connection), requests_(requests), state_(state),
      resolver_(resolver), authorizer_(connection, gate),
      version_(std::move(version)) {
    registerAdaptor();
}

ManagerObject::~ManagerObject() {
    machine_objects_.clear();
    lease_objects_.clear();
    unregisterAdaptor();
}

// Once a call's Result is remembered, a failure must be answered through
// pending_, since the handler's own Result has been moved from.
void ManagerObject::dispatch(RequestId id, const std::function<void()> &fn) {
    try {
        fn();
    } catch (const sdbus::Error &e) {
        answer_error(id, ApiError{ErrorKind::Failed, e.getMessage()});
    } catch (const std::exception &e) {
        log_error(std::string("request failed: ") + e.what());
        answer_error(id, ApiError{ErrorKind::Failed, e.what()});
    }
}

void ManagerObject::answer_error(RequestId id, const ApiError &error) {
    done_inspecting(id);
    auto it = pending_.find(id);
    if (it == pending_.end())
        return;
    emit_safely("error reply", [&] { std::visit([&](auto &r) { r.returnError(to_dbus(error)); }, it->second); });
    pending_.erase(it);
}

void ManagerObject::authorize(RequestId id, const char *method, std::map<std::string, std::string> details,
                              std::function<void()> go, const char *interface, const sdbus::Message *message) {
    // The caller's Result is in pending_ now: every failure is answered from there.
    try {
        AuthorizationDecision decision = authorization_for(interface, method);
        if (decision.kind == Authorization::Open)
            return dispatch(id, go);
        if (decision.kind == Authorization::Denied)
            return answer_error(id, {ErrorKind::AccessDenied, std::string(method) + " is not allowed for anyone"});
        if (!message)
            message = getObject().getCurrentlyProcessedMessage();
        if (!message)
            return answer_error(id, {ErrorKind::Failed, "cannot identify the caller"});
        AuthorizationRequest request{message->getSender(), allows_interactive_authorization(*message),
                                     decision.action, std::move(details)};
        authorizer_.check(std::move(request), [this, id, go = std::move(go)](std::optional<ApiError> error) {
            if (error)
                answer_error(id, *error);
            else
                dispatch(id, go);
        });
    } catch (const std::exception &e) {
        log_error(std::string("authorizing ") + method + " failed: " + e.what());
        answer_error(id, {ErrorKind::Failed, std::string("cannot authorize ") + method + ": " + e.what()});
    }
}

std::string ManagerObject::caller() const {
    const sdbus::Message *message = getObject().getCurrentlyProcessedMessage();
    return message ? message->getSender() : std::string();
}

void ManagerObject::resolve_disks(RequestId id, const std::string &caller, bool authorized,
                                  std::vector<std::string> paths, bool taking,
                                  std::function<void(const std::vector<DiskName> &disks)> go) {
    std::vector<std::string> asked = paths;
    resolver_.resolve(
        caller, authorized, std::move(paths),
        [this, id, taking, asked = std::move(asked), go = std::move(go)](DiskResolver::Outcome outcome) {
            if (outcome.error)
                return answer_error(id, *outcome.error);
            std::vector<DiskName> disks;
            for (size_t i = 0; i < outcome.names.size(); i++) {
                auto disk = caller_disk(outcome.names[i], asked[i], taking);
                if (auto *error = std::get_if<ApiError>(&disk))
                    return answer_error(id, *error);
                disks.push_back(std::get<DiskName>(disk));
            }
            dispatch(id, [&] { go(disks); });
        });
}

void ManagerObject::device_changed(const DeviceEvent &event) {
    emit_safely("a device signal", [&] {
        if (event.kind == DeviceEvent::Kind::Added)
            emitDeviceAdded(event.name);
        else
            emitDeviceRemoved(event.name);
    });
}

RequestId ManagerObject::remember(PendingResult result) {
    RequestId id = next_request_++;
    pending_.emplace(id, std::move(result));
    return id;
}

void ManagerObject::done_inspecting(RequestId id) {
    auto it = inspecting_.find(id);
    if (it == inspecting_.end())
        return;
    if (--inspections_per_caller_[it->second] == 0)
        inspections_per_caller_.erase(it->second);
    inspecting_.erase(it);
}

}  // namespace vmlease
