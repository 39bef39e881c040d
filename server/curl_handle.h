// Ownership of libcurl objects: each one in a std::unique_ptr whose deleter
// is libcurl's own free function, so no path leaks or double-frees a handle.
//
//   CurlHandle curl(curl_easy_init());
//   CurlSlist headers;
//   AppendHeader(headers, "Accept: application/json");
//
// InitCurlOnce() must run before the first curl_easy_init (the Treezor client
// calls it in its constructor).
//
// Thread-safety: the types are plain owners (one thread at a time per
// object, as libcurl requires); InitCurlOnce is thread-safe.
#ifndef TREEZOR_BROKER_SERVER_CURL_HANDLE_H_
#define TREEZOR_BROKER_SERVER_CURL_HANDLE_H_

#include <curl/curl.h>

#include <memory>

namespace treezor::broker::internal {

struct CurlEasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct CurlMimeDeleter {
  void operator()(curl_mime* mime) const { curl_mime_free(mime); }
};
using CurlMime = std::unique_ptr<curl_mime, CurlMimeDeleter>;

// A string libcurl allocated (curl_easy_escape, ...).
struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

// A string libcurl allocated that holds secret bytes (curl_easy_escape of a
// client secret): wiped before curl_free.
struct CurlSecretStringDeleter {
  void operator()(char* s) const;
};
using CurlSecretString = std::unique_ptr<char, CurlSecretStringDeleter>;

// curl_global_init, once per process; never cleaned up (the process may
// still have handles in flight at exit). A failure shows up as
// curl_easy_init returning null.
void InitCurlOnce();

// Appends `header` to `list`; on failure (out of memory) the list is left
// as it was.
void AppendHeader(CurlSlist& list, const char* header);

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CURL_HANDLE_H_
