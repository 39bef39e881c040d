#include "server/core_dumps.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>

namespace treezor::broker {

absl::Status DisableCoreDumps() {
  const rlimit none{0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    return absl::ErrnoToStatus(errno, "setrlimit(RLIMIT_CORE, 0)");
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return absl::ErrnoToStatus(errno, "prctl(PR_SET_DUMPABLE, 0)");
  }
  return absl::OkStatus();
}

bool CoreDumpsPossible() {
  rlimit limit{};
  if (getrlimit(RLIMIT_CORE, &limit) != 0) return true;  // cannot tell
  return limit.rlim_cur > 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
}

}  // namespace treezor::broker
