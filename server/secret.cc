#include "server/secret.h"

#include <algorithm>

#include "openssl/crypto.h"

namespace treezor::broker {
namespace {

bool IsTrailingWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

Secret::Secret(absl::string_view value) : value_(value) {}

Secret::Secret(Secret&& other) noexcept {
  value_.reserve(other.value_.size());
  value_.append(other.value_);
  other.Cleanse();
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Cleanse();
    value_.reserve(other.value_.size());
    value_.append(other.value_);
    other.Cleanse();
  }
  return *this;
}

Secret::~Secret() { Cleanse(); }

void Secret::Cleanse() {
  // The whole buffer: bytes past size() may hold what trimming removed.
  CleanseString(&value_);
}

void CleanseString(std::string* s) {
  s->resize(s->capacity());
  OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

void Secret::Append(absl::string_view bytes) {
  const size_t needed = value_.size() + bytes.size();
  if (needed > value_.capacity()) {
    std::string bigger;
    bigger.reserve(std::max(2 * value_.capacity(), needed));
    bigger.append(value_);
    Cleanse();
    value_.swap(bigger);  // `bigger` now holds the wiped buffer
  }
  value_.append(bytes.data(), bytes.size());
}

void Secret::TrimTrailingWhitespace() {
  size_t n = value_.size();
  while (n > 0 && IsTrailingWhitespace(value_[n - 1])) --n;
  value_.resize(n);
}

}  // namespace treezor::broker
