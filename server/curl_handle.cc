#include "server/curl_handle.h"

namespace treezor::broker::internal {

void InitCurlOnce() {
  // Thread-safe by C++ static initialisation.
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

void AppendHeader(CurlSlist& list, const char* header) {
  // curl_slist_append returns null (leaving the list intact) on failure.
  if (curl_slist* head = curl_slist_append(list.get(), header)) {
    list.release();
    list.reset(head);
  }
}

}  // namespace treezor::broker::internal
