// DisableCoreDumps changes this test process for good: it has a binary of
// its own. The real binary's start-up is checked by broker_process_test.sh.
#include "server/core_dumps.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

TEST(DisableCoreDumps, SetsTheCoreLimitToZeroAndTheProcessNonDumpable) {
  // A limit above 0 to start from (the test may run under `ulimit -c 0`).
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &limit), 0);
  if (limit.rlim_max > 0) {
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? 4096 : limit.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_CORE, &limit), 0);
    ASSERT_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    EXPECT_TRUE(CoreDumpsPossible());
  }

  ASSERT_TRUE(DisableCoreDumps().ok());

  ASSERT_EQ(getrlimit(RLIMIT_CORE, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, 0u);
  EXPECT_EQ(limit.rlim_max, 0u);  // not raisable without CAP_SYS_RESOURCE
  EXPECT_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
  EXPECT_FALSE(CoreDumpsPossible());
}

}  // namespace
}  // namespace treezor::broker
