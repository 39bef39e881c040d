// A tenant's `baseUrl`: https://host[:port][/path], without trailing slash,
// query, fragment or user information, since the token URL is built as
// baseUrl + "/oauth/token" and Treezor is only spoken to over HTTPS.
//
//   if (std::optional<std::string> p = BaseUrlProblem(url)) Report(*p);
//
// Thread-safety: a pure function.
#ifndef TREEZOR_BROKER_SERVER_BASE_URL_H_
#define TREEZOR_BROKER_SERVER_BASE_URL_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace treezor::broker {

// What is wrong with `url` (quoting it), or nullopt when it is usable.
std::optional<std::string> BaseUrlProblem(absl::string_view url);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BASE_URL_H_
