// The one reader of the secrets a tenant's configuration names — the client
// secret (clientSecretFile or clientSecretEnv), usernameFile, passwordFile —
// used by config validation (--check-config, start-up, reload) and by every
// token request, so both apply the same rule and say the same thing.
//
// The rule, for every source: trailing ASCII whitespace (spaces, tabs, CR,
// LF) is removed; what remains must not be empty. Nothing else is touched.
//
// Errors are FAILED_PRECONDITION. The message starts with the config field's
// JSON name and names the file or variable, never its content:
//   clientSecretFile: cannot read "/run/s/acme": No such file or directory
//   passwordFile: "/run/s/pw" is empty (trailing whitespace does not count)
//   clientSecretEnv: environment variable ACME_SECRET is not set
// Config validation puts the tenant's path before it ("tenants[0]."), the
// Treezor client the tenant ("tenant acme: ").
//
//   absl::StatusOr<Secret> secret = ReadClientSecret(tenant);
//   if (!secret.ok()) return secret.status();
//   Send(secret->view());
//
// Thread-safety: all functions are thread-safe (the broker never changes its
// own environment).
#ifndef TREEZOR_BROKER_SERVER_SECRET_READER_H_
#define TREEZOR_BROKER_SERVER_SECRET_READER_H_

#include <cstddef>
#include <limits>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/secret.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// A secret is a few dozen bytes; a secret file larger than this is a wrong
// path (a log, an archive, a disk image) and is not read whole.
inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// The whole content of the regular file `file`, read through a wiped buffer
// (it may hold a key or a secret). Errors name the file:
// `cannot read "<file>": <reason>` (the code from errno), `"<file>" is not
// a regular file` or `"<file>" is larger than <max_bytes> bytes`
// (INVALID_ARGUMENT; checked on the size fstat reports and again while
// reading, so a file that grows is not read past the limit either).
absl::StatusOr<Secret> ReadWholeFile(
    const std::string& file,
    size_t max_bytes = std::numeric_limits<size_t>::max());

// A secret file; `field` is its config field's JSON name ("usernameFile").
// An empty `file` is "<field>: required"; a file larger than
// kMaxSecretFileBytes is `<field>: "<file>" is larger than 65536 bytes`.
absl::StatusOr<Secret> ReadSecretFile(absl::string_view field,
                                      const std::string& file);

// A secret in the environment variable `variable`; `field` as above.
absl::StatusOr<Secret> ReadSecretEnv(absl::string_view field,
                                     const std::string& variable);

// The tenant's client secret: from clientSecretFile when set, else from
// clientSecretEnv, else "clientSecretFile: required (or clientSecretEnv)".
// Read at each call, so a rotated secret is used at once.
absl::StatusOr<Secret> ReadClientSecret(const v1::Tenant& tenant);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SECRET_READER_H_
