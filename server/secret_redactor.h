// Removes every trace of a request's secrets from text a server sent back
// (an OAuth error description, an error code) before that text is logged.
//
//   SecretRedactor redactor;
//   redactor.Add(client_secret.view());
//   std::string safe = redactor.Redact(error_description);
//   // every run of >= kMinRun characters shared with a secret (in any form
//   // below) is now "[redacted]"
//
// What counts as a trace, for each secret added:
//  - its forms: raw; percent-encoded with upper- and lower-case hex, with
//    space as %20 and as '+' (curl_easy_escape and HTML form encoding);
//    JSON-escaped as the broker's JSON body carries it; and as PHP's
//    json_encode writes it ("\/" and \uXXXX), Treezor's API being PHP;
//  - in each form, any run of at least kMinRun = 6 consecutive characters
//    (the whole form when it is shorter), so a secret echoed in part, or cut
//    by someone's truncation, is caught too.
// Why 6: whatever survives shares at most 5 consecutive characters with a
// secret — about 30 bits of a random 32+ character secret, and nothing that
// lets a reader rebuild it — while common words in an error description
// (a window must equal 6 consecutive characters of a secret, byte for byte)
// are left readable. A server that deliberately transforms the secret
// (base64, reversed) defeats any redaction: that is why callers never get
// the free text at all, and the log gets it only bounded.
//
// The forms are held in Secrets (wiped when the redactor goes). Redaction
// is done before any sanitising or truncation (see oauth_response.h), and
// marked ranges are widened to whole UTF-8 characters.
//
// Thread-safety: Add is not thread-safe; const methods may run concurrently.
#ifndef TREEZOR_BROKER_SERVER_SECRET_REDACTOR_H_
#define TREEZOR_BROKER_SERVER_SECRET_REDACTOR_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/secret.h"

namespace treezor::broker {

class SecretRedactor {
 public:
  static constexpr size_t kMinRun = 6;
  static constexpr absl::string_view kMarker = "[redacted]";

  // Redacts nothing until secrets are added.
  SecretRedactor() = default;
  SecretRedactor(SecretRedactor&&) = default;
  SecretRedactor& operator=(SecretRedactor&&) = default;

  // Adds `secret` and its encoded forms. An empty secret is ignored.
  void Add(absl::string_view secret);

  // `text` with every trace of the added secrets replaced by kMarker
  // (adjacent or overlapping traces make one marker).
  std::string Redact(absl::string_view text) const;

  bool empty() const { return forms_.empty(); }

 private:
  void AddForm(Secret form);
  std::vector<Secret> forms_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SECRET_REDACTOR_H_
