// Lease storage that breaks on command (tests/support/faultfs.c, FUSE): a
// mount point mirroring a backing directory whose I/O can fail (EIO) or hang.
#pragma once

#include "harness.hpp"

#include <string>

namespace vmtest {

class FaultFs {
public:
    // Mounts `backing` on `mountpoint`; returns once it serves.
    FaultFs(const std::string &backing, const std::string &mountpoint, const std::string &log);
    // Heals (so nothing stays hung), then unmounts.
    ~FaultFs();
    // "ok", "eio", "hang", "hangmeta" or "hang NAME" (only the file NAME
    // hangs; "hang PREFIX*": every file whose name starts with PREFIX); in
    // force when this returns.
    void set(const std::string &mode);
    // Requests blocked right now (the "hung=" of the control file).
    unsigned hung() const;
    const std::string &mountpoint() const { return mountpoint_; }

private:
    std::string mountpoint_;
    int from_ = -1;
    Child child_;
};

}  // namespace vmtest
