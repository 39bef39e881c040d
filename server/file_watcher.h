// Notices when files change on disk: the config file and the credential files
// it names. Polls a content fingerprint (SHA-256) every `poll_interval`,
// following symlinks on every read — so it sees the Kubernetes way of
// updating a mounted ConfigMap/Secret (the directory's `..data` symlink is
// swapped atomically to a new timestamped directory), which an inotify watch
// on the file itself misses. A file that disappears counts as a change, and
// again when it comes back.
//
// Thread-safety: thread-safe. `on_change` runs on the watcher's own thread,
// never concurrently with itself.
#ifndef TREEZOR_BROKER_SERVER_FILE_WATCHER_H_
#define TREEZOR_BROKER_SERVER_FILE_WATCHER_H_

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

// SHA-256 of the file's content (hex), or "missing" when unreadable.
std::string FileFingerprint(const std::string& path);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_FILE_WATCHER_H_
