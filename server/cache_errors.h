// The errors the token cache answers its callers with, in one place so the
// lookup path and the fetch path word them alike. Messages carry what the
// fetcher said (which never holds a secret or a token) and durations.
#ifndef TREEZOR_BROKER_SERVER_CACHE_ERRORS_H_
#define TREEZOR_BROKER_SERVER_CACHE_ERRORS_H_

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace treezor::broker {

// What a caller sees when no usable token is cached and the last attempt
// failed. FAILED_PRECONDITION (refused credentials) and NOT_FOUND pass
// through; everything else is UNAVAILABLE.
absl::Status CallerError(const absl::Status& fetch_error);

// `min_ttl` cannot be met even by a fresh token living `lifetime`.
absl::Status MinTtlOutOfRange(absl::Duration min_ttl, absl::Duration lifetime);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CACHE_ERRORS_H_
