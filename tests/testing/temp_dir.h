// A fresh, uniquely named directory for one test, removed (recursively) when
// the TempDir is destroyed. Created under $TEST_TMPDIR when set (ctest/bazel
// style sandboxes), otherwise under /tmp.
//
//   TempDir dir;
//   ASSERT_OK_AND_ASSIGN(auto certs, CertFactory::Create(dir.path(), "Test
//   CA"));
//
// Thread-safety: path() may be read from any thread; the directory's contents
// are the test's business.
#ifndef TREEZOR_BROKER_TESTS_TESTING_TEMP_DIR_H_
#define TREEZOR_BROKER_TESTS_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace treezor::broker::testing {

class TempDir {
 public:
  // Aborts the test binary if no directory can be made: nothing sensible can
  // run without one, and a test helper has no caller to return an error to.
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string templ =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
        "/tzb-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      std::fprintf(stderr, "TempDir: mkdtemp(%s) failed: %s\n", templ.c_str(),
                   std::strerror(errno));
      std::abort();
    }
    path_ = buf.data();
  }

  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // `path()/name` (no check that it exists).
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_TEMP_DIR_H_
