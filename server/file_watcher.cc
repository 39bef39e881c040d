#include "server/file_watcher.h"

#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "common/token_digest.h"

namespace treezor::broker {

std::string FileFingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "missing";
  std::ostringstream content;
  content << in.rdbuf();
  return TokenSha256Hex(content.str());
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
