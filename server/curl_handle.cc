#include "server/curl_handle.h"

#include <cstring>

#include "openssl/crypto.h"

namespace treezor::broker::internal {

void InitCurlOnce() {
  // Thread-safe by C++ static initialisation.
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

void CurlSecretStringDeleter::operator()(char* s) const {
  if (s == nullptr) return;
  OPENSSL_cleanse(s, std::strlen(s));
  curl_free(s);
}

void AppendHeader(CurlSlist& list, const char* header) {
  // curl_slist_append returns null (leaving the list intact) on failure.
  if (curl_slist* head = curl_slist_append(list.get(), header)) {
    list.release();
    list.reset(head);
  }
}

}  // namespace treezor::broker::internal
