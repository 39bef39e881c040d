// Keeps the broker's memory — client secrets, passwords, refresh tokens,
// access tokens — out of core dumps and away from same-user debuggers.
//
//   absl::Status s = DisableCoreDumps();  // at start-up, before any secret
//
// Two switches, because either alone leaves a way out: RLIMIT_CORE 0 (soft
// and hard, so nothing in the process can raise it again) stops the kernel
// writing a core file, but a core_pattern that pipes to a program (systemd-
// coredump, apport) ignores that limit; PR_SET_DUMPABLE 0 stops those too,
// and also forbids ptrace attach and /proc/<pid>/mem reads by processes of
// the same user that lack CAP_SYS_PTRACE. The broker disables both at start
// unless started with --allow-core-dumps (for debugging a crash).
//
// Thread-safety: call once, from main, before threads start.
#ifndef TREEZOR_BROKER_SERVER_CORE_DUMPS_H_
#define TREEZOR_BROKER_SERVER_CORE_DUMPS_H_

#include "absl/status/status.h"

namespace treezor::broker {

// Sets RLIMIT_CORE to 0 and the process non-dumpable. INTERNAL naming the
// call that failed (neither can fail for an unprivileged process lowering
// its own limits, but the broker refuses to start rather than run exposed).
absl::Status DisableCoreDumps();

// Whether the process may dump core: dumpable and RLIMIT_CORE above 0.
bool CoreDumpsPossible();

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CORE_DUMPS_H_
