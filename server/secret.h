// Bytes that must not outlive their use — a client secret, a password, a
// refresh token, a request body that carries one: move-only, and the buffer
// is wiped (OPENSSL_cleanse) when the Secret is destroyed or assigned to.
//
//   Secret secret("s3cr3t");
//   Send(secret.view());
//   // wiped when `secret` goes out of scope
//
// Moving copies into the destination and wipes the source, so no stray copy
// is left in a freed buffer (a moved std::string may keep its bytes in the
// source's small-string buffer).
//
// Thread-safety: like std::string (const methods may run concurrently).
#ifndef TREEZOR_BROKER_SERVER_SECRET_H_
#define TREEZOR_BROKER_SERVER_SECRET_H_

#include <string>

#include "absl/strings/string_view.h"

namespace treezor::broker {

class Secret {
 public:
  Secret() = default;
  explicit Secret(absl::string_view value);
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();

  absl::string_view view() const { return value_; }
  bool empty() const { return value_.empty(); }

  // Appends `bytes`; when the buffer must grow, the old one is wiped first.
  void Append(absl::string_view bytes);
  // Removes trailing spaces, tabs, CRs and LFs.
  void TrimTrailingWhitespace();

 private:
  void Cleanse();
  std::string value_;
};

// Wipes `s`'s whole buffer (its capacity, not just its size) and empties it:
// for the few std::strings that must briefly hold secret bytes (an API that
// only writes to std::string). Reserve enough capacity before writing, so no
// reallocation leaves a copy behind.
void CleanseString(std::string* s);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SECRET_H_
