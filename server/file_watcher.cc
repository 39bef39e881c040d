#include "server/file_watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"

namespace treezor::broker {
namespace {

struct DigestContextDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::string FileFingerprint(const std::string& path) {
  // O_NONBLOCK: a FIFO must not block the watcher before fstat rejects it.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "missing";
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0) return "missing";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  std::unique_ptr<EVP_MD_CTX, DigestContextDeleter> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return "unreadable";
  }
  char buffer[4096];
  absl::Cleanup wipe_buffer = [&buffer] {
    OPENSSL_cleanse(buffer, sizeof buffer);
  };
  size_t hashed = 0;
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return "unreadable";
    }
    EVP_DigestUpdate(ctx.get(), buffer, static_cast<size_t>(n));
    hashed += static_cast<size_t>(n);
    if (hashed >= kMaxFingerprintBytes) {
      // The rest is represented by the size and modification time.
      const std::string tail = absl::StrCat(
          "\n", st.st_size, "\n", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
      EVP_DigestUpdate(ctx.get(), tail.data(), tail.size());
      break;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &size) != 1) return "unreadable";
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest), size));
}

FileWatcher::FileWatcher(absl::Duration poll_interval, OnChange on_change)
    : poll_interval_(poll_interval), on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Loop(); });
}

FileWatcher::~FileWatcher() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void FileWatcher::SetFiles(const std::vector<std::string>& paths) {
  std::map<std::string, std::string> next;
  {
    MutexLock lock(&mu_);
    for (const std::string& path : paths) {
      auto it = fingerprints_.find(path);
      if (it != fingerprints_.end()) next.emplace(path, it->second);
    }
  }
  for (const std::string& path : paths) {
    if (!next.contains(path)) next.emplace(path, FileFingerprint(path));
  }
  MutexLock lock(&mu_);
  fingerprints_.swap(next);
}

std::vector<std::string> FileWatcher::CheckNow() {
  MutexLock check(&check_mu_);
  std::map<std::string, std::string> current;
  {
    MutexLock lock(&mu_);
    current = fingerprints_;
  }
  std::vector<std::string> changed;
  for (auto& [path, fingerprint] : current) {
    std::string now = FileFingerprint(path);
    if (now != fingerprint) {
      changed.push_back(path);
      fingerprint = std::move(now);
    }
  }
  if (changed.empty()) return changed;
  {
    MutexLock lock(&mu_);
    for (const std::string& path : changed) {
      auto it = fingerprints_.find(path);
      if (it != fingerprints_.end()) it->second = current[path];
    }
  }
  on_change_(changed);
  return changed;
}

void FileWatcher::Loop() {
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (cv_.WaitUntil(&mu_, absl::Now() + poll_interval_,
                        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                          return stopping_;
                        })) {
        return;
      }
    }
    CheckNow();
  }
}

}  // namespace treezor::broker
