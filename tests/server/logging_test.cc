#include "server/logging.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class CapturedLog {
 public:
  CapturedLog() {
    SetLogSink([this](absl::string_view line) {
      MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~CapturedLog() { SetLogSink(nullptr); }
  std::vector<std::string> lines() {
    MutexLock lock(&mu_);
    return lines_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST(Logging, WritesOneJsonObjectPerLine) {
  CapturedLog log;
  LogInfo("token obtained", {{"tenant", "acme"}, {"version", 3}});
  ASSERT_EQ(log.lines().size(), 1u);
  const std::string line = log.lines()[0];
  EXPECT_THAT(line, StartsWith("{\"time\":\""));
  EXPECT_THAT(line, HasSubstr("\"level\":\"info\",\"msg\":\"token obtained\","
                              "\"tenant\":\"acme\",\"version\":\"3\"}"));
}

TEST(Logging, LinesReachStderrInOrderOnceFlushed) {
  // Point fd 2 at a file for the duration of the test.
  char path[] = "/tmp/tzb-logging-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  for (int i = 0; i < 100; ++i) LogInfo("line", {{"i", i}});
  LogError("an error is written at once");
  FlushLogs();
  dup2(saved, 2);
  close(saved);
  std::string content;
  char buf[4096];
  ssize_t n;
  lseek(fd, 0, SEEK_SET);
  while ((n = read(fd, buf, sizeof(buf))) > 0) content.append(buf, n);
  close(fd);
  unlink(path);
  std::vector<std::string> lines = absl::StrSplit(content, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 101u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_THAT(lines[i], HasSubstr(absl::StrCat("\"i\":\"", i, "\"")));
  }
  EXPECT_THAT(lines[100], HasSubstr("an error is written at once"));
  EXPECT_THAT(lines[0], ::testing::MatchesRegex(
      R"(\{"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z",.*)"));
}

TEST(Logging, EscapesQuotesControlCharactersAndNewlines) {
  std::string out;
  internal::AppendJsonString("a\"b\\c\nd\x01", &out);
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
}

TEST(Logging, EscapesEveryByteThatJsonRequiresAndNoOther) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string out;
  internal::AppendJsonString(all, &out);
  std::string expected = "\"";
  for (int c = 0; c < 256; ++c) {
    if (c == '"') {
      expected += "\\\"";
    } else if (c == '\\') {
      expected += "\\\\";
    } else if (c == '\n') {
      expected += "\\n";
    } else if (c == '\r') {
      expected += "\\r";
    } else if (c == '\t') {
      expected += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      expected += absl::StrFormat("\\u%04x", c);
    } else {
      expected.push_back(static_cast<char>(c));
    }
  }
  expected += "\"";
  EXPECT_EQ(out, expected);
}

// Lines are built in a buffer each thread reuses (issue 13): a long line
// leaves nothing behind in the next one, and preformatted fields (LogJson)
// come out as given.
TEST(Logging, EachLineIsWholeAfterALongerOneOnTheSameThread) {
  CapturedLog log;
  const std::string big(20000, 'x');
  LogInfo("big", {{"payload", big}});
  LogJson(LogLevel::kInfo, "small", ",\"tenant\":\"acme\"");
  LogInfo("small again");
  const std::vector<std::string> lines = log.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr("\"payload\":\"" + big + "\"}"));
  EXPECT_THAT(lines[1], StartsWith("{\"time\":\""));
  EXPECT_THAT(lines[1], ::testing::EndsWith(
                            "\"level\":\"info\",\"msg\":\"small\",\"tenant\":\"acme\"}"));
  EXPECT_THAT(lines[2],
              ::testing::EndsWith("\"level\":\"info\",\"msg\":\"small again\"}"));
  EXPECT_LT(lines[2].size(), 80u);
}

TEST(Logging, DropsLinesBelowTheMinimumLevel) {
  CapturedLog log;
  SetMinLogLevel(LogLevel::kWarning);
  LogInfo("quiet");
  LogWarning("loud");
  SetMinLogLevel(LogLevel::kInfo);
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr("loud"));
}

TEST(Logging, ConcurrentWritersNeverInterleaveLines) {
  CapturedLog log;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 100; ++i) LogInfo("m", {{"t", t}, {"i", i}});
    });
  }
  for (auto& th : threads) th.join();
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 400u);
  for (const auto& l : lines) {
    EXPECT_EQ(l.front(), '{');
    EXPECT_EQ(l.back(), '}');
  }
}

}  // namespace
}  // namespace treezor::broker
