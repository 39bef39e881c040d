#include "server/cache_errors.h"

#include "absl/strings/str_cat.h"

namespace treezor::broker {

absl::Status CallerError(const absl::Status& fetch_error) {
  if (absl::IsFailedPrecondition(fetch_error) || absl::IsNotFound(fetch_error)) {
    return fetch_error;
  }
  return absl::UnavailableError(
      absl::StrCat("no valid token cached and Treezor could not be reached: ",
                   fetch_error.message()));
}

absl::Status MinTtlOutOfRange(absl::Duration min_ttl, absl::Duration lifetime) {
  return absl::OutOfRangeError(absl::StrCat(
      "min_ttl ", absl::FormatDuration(min_ttl),
      " exceeds what a fresh token offers (", absl::FormatDuration(lifetime),
      ")"));
}

}  // namespace treezor::broker
