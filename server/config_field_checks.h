// Checks of single config fields that several validation sections share:
// a file the broker will read, a positive duration, a list of scopes. Each
// adds what it finds to `problems`, naming `path` (the JSON field path).
//
// Files: every path must be absolute (the broker's working directory is no
// part of its config), and who may write or read a file is checked against
// what it holds (FileKind). Modes are those of the file a symlink leads to,
// as in a Kubernetes Secret volume, whose files are symlinks into a
// `..data` directory.
//
// Internal to config validation (server/config_validator*.cc).
// Thread-safety: thread-compatible (RequireFile reads the file system).
#ifndef TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_
#define TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_

#include <cstdint>
#include <string>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "absl/time/time.h"
#include "server/config_problems.h"

namespace treezor::broker::internal {

// What a file holds, which decides who may read it. Nobody but its owner may
// write any of them: whoever can write a CA bundle, a certificate, a key or
// a secret decides whom the broker trusts, what it presents, or which
// credentials it sends.
enum class FileKind {
  kPublic,   // a certificate, a CA bundle, the config itself
  kPrivate,  // a secret or a private key: readable by others is a warning
};

// True if `file` is an absolute path; otherwise says so at `path`.
bool RequireAbsolutePath(const std::string& path, const std::string& file,
                         ConfigProblems& problems);

// A problem if `file` may be written by its group or others; for kPrivate, a
// warning if others may read it. Says nothing if `file` cannot be examined
// (reading it reports that).
void CheckFilePermissions(const std::string& path, const std::string& file,
                          FileKind kind, ConfigProblems& problems);

// A file that must be named by an absolute path, exist, be a readable
// regular file, not be empty, and have permissions fit for `kind`. (Read
// through a wiped buffer: it may be a private key.)
void RequireFile(const std::string& path, const std::string& file,
                 FileKind kind, ConfigProblems& problems);

// "must be positive, got <d>" unless `d` > 0.
void RequirePositive(const std::string& path,
                     const google::protobuf::Duration& d,
                     ConfigProblems& problems);

// "must be in [<min>, <max>], got <d>" unless min <= `d` <= max.
void RequireDurationIn(const std::string& path,
                       const google::protobuf::Duration& d, absl::Duration min,
                       absl::Duration max, ConfigProblems& problems);

// "must be in [<min>, <max>], got <v>" unless min <= `v` <= max. Byte counts
// that are whole MiB / GiB are also shown in those units.
void RequireIntIn(const std::string& path, int64_t v, int64_t min,
                  int64_t max, ConfigProblems& problems);

// Every scope of `scopes` well formed (ValidateScope), each problem naming
// "path[i]".
void ValidateScopes(
    const std::string& path,
    const google::protobuf::RepeatedPtrField<std::string>& scopes,
    ConfigProblems& problems);

// A `callers[].identity` / `admins[].identity` that can match a certificate
// (docs/CONFIG.md, "Caller identities"): either a URI with a scheme
// (`spiffe://trust.domain/path`, which then matches only a URI SAN), or a DNS
// name / subject CN (which matches a DNS SAN, or the CN of a certificate
// without SANs). Neither may hold whitespace or a control character, and an
// identity `scheme:` starts is a URI, whose remainder must not be empty
// (`spiffe:` also needs a trust domain). Problems name `path`.
void ValidateIdentity(const std::string& path, const std::string& identity,
                      ConfigProblems& problems);

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_
