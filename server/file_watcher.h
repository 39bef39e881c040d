// Notices when files change on disk: the config file and the credential files
// it names. Polls a content fingerprint (SHA-256) every `poll_interval`,
// following symlinks on every read — so it sees the Kubernetes way of
// updating a mounted ConfigMap/Secret (the directory's `..data` symlink is
// swapped atomically to a new timestamped directory), which an inotify watch
// on the file itself misses. A file that disappears counts as a change, and
// again when it comes back.
//
// The watched files include secrets (clientSecretFile, passwordFile, TLS
// keys), so the watcher keeps only their SHA-256 digests — fingerprints_
// maps a path to 64 hex digits — and FileFingerprint streams a file through
// a 4 KiB buffer, wiped after use, into the digest: no copy of a content
// exists beyond the buffer's life. Only regular files are read (a FIFO or a
// device is "not a regular file", so no path makes the watcher block or
// read forever), and at most kMaxFingerprintBytes of each.
//
// Thread-safety: thread-safe. `on_change` runs on the watcher's own thread,
// never concurrently with itself.
#ifndef TREEZOR_BROKER_SERVER_FILE_WATCHER_H_
#define TREEZOR_BROKER_SERVER_FILE_WATCHER_H_

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/sync.h"

namespace treezor::broker {

class FileWatcher {
 public:
  using OnChange = std::function<void(const std::vector<std::string>& paths)>;

  FileWatcher(absl::Duration poll_interval, OnChange on_change);
  ~FileWatcher();

  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // Replaces the watched set. Files already watched keep their fingerprint;
  // new ones take their current content as the baseline (no event).
  void SetFiles(const std::vector<std::string>& paths) ABSL_LOCKS_EXCLUDED(mu_);

  // Checks now instead of at the next tick; returns the changed paths (the
  // same list `on_change` receives).
  std::vector<std::string> CheckNow() ABSL_LOCKS_EXCLUDED(check_mu_, mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const absl::Duration poll_interval_;
  const OnChange on_change_;
  // Serialises checks (the thread's and CheckNow's), so on_change never runs
  // twice at once. Taken before mu_.
  Mutex check_mu_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> fingerprints_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Beyond this many bytes a file's fingerprint covers its first
// kMaxFingerprintBytes plus its size and modification time (a config or
// credential file is a few KiB; hashing a huge one every poll would cost).
inline constexpr size_t kMaxFingerprintBytes = 16 << 20;

// SHA-256 of the file's content (64 hex digits), "missing" when it cannot be
// opened, "not a regular file", or "unreadable".
std::string FileFingerprint(const std::string& path);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_FILE_WATCHER_H_
