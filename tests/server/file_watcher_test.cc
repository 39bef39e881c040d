#include "server/file_watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/freed_memory_scan.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::treezor::broker::testing::FreedMemoryScan;
using ::treezor::broker::testing::TempDir;

constexpr char kSecret[] = "Wf8Kd2Lp9Xq4Rm7Tz3Vb6Nc";

// With C stdio: no std::string holds the content while a scan runs.
void WriteFile(const std::string& path, const char* content, size_t size) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(content, 1, size, f), size);
  std::fclose(f);
}
void WriteFile(const std::string& path, const char* content) {
  WriteFile(path, content, std::strlen(content));
}

TEST(FileFingerprint, IsTheSha256OfTheContent) {
  TempDir dir;
  WriteFile(dir.File("f"), "abc");
  EXPECT_EQ(FileFingerprint(dir.File("f")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(FileFingerprint(dir.File("none")), "missing");
}

TEST(FileFingerprint, ReadsAFileLargerThanItsBuffer) {
  TempDir dir;
  const std::string a(10'000, 'a');
  std::string b = a;
  b.back() = 'b';
  WriteFile(dir.File("a"), a.data(), a.size());
  WriteFile(dir.File("b"), b.data(), b.size());
  EXPECT_NE(FileFingerprint(dir.File("a")), FileFingerprint(dir.File("b")));
}

// The watcher keeps digests, not contents: what it reads passes through a
// buffer that is wiped, and nothing else holds it (a content copy freed as
// is would show up here).
TEST(FileFingerprint, LeavesNoCopyOfTheContentInFreedMemory) {
  TempDir dir;
  const std::string path = dir.File("secret");
  WriteFile(path, kSecret);
  FreedMemoryScan scan({kSecret});
  const std::string fingerprint = FileFingerprint(path);
  EXPECT_EQ(fingerprint.size(), 64u);
  EXPECT_EQ(scan.unwiped_blocks(), 0);
}

TEST(FileFingerprint, FifoIsNotReadAndDoesNotBlock) {
  TempDir dir;
  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::promise<std::string> promise;
  std::future<std::string> result = promise.get_future();
  std::thread reader(
      [&promise, &fifo] { promise.set_value(FileFingerprint(fifo)); });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "FileFingerprint blocked on a FIFO";
    // Unblock it: a writer that opens and closes at once.
    const int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
  }
  reader.join();
  EXPECT_EQ(result.get(), "not a regular file");
}

TEST(FileFingerprint, BeyondTheLimitCoversSizeAndModificationTime) {
  TempDir dir;
  const std::string path = dir.File("huge");
  std::string content(kMaxFingerprintBytes + 16, 'x');
  WriteFile(path, content.data(), content.size());
  const timespec fixed[2] = {{1'700'000'000, 0}, {1'700'000'000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), fixed, 0), 0);
  const std::string before = FileFingerprint(path);

  // A byte past the limit changes, the modification time is put back: not
  // read, so not seen (the file is not hashed whole).
  content.back() = 'y';
  WriteFile(path, content.data(), content.size());
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), fixed, 0), 0);
  EXPECT_EQ(FileFingerprint(path), before);

  // A real change moves the modification time: seen.
  const timespec later[2] = {{1'700'000'001, 0}, {1'700'000'001, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), later, 0), 0);
  EXPECT_NE(FileFingerprint(path), before);
}

TEST(FileWatcher, ReportsChangedAndRemovedFilesOnce) {
  TempDir dir;
  WriteFile(dir.File("a"), "one");
  WriteFile(dir.File("b"), "two");
  std::vector<std::vector<std::string>> events;
  // Checks only when asked (the poll is an hour away).
  FileWatcher watcher(absl::Hours(1),
                      [&events](const std::vector<std::string>& paths) {
                        events.push_back(paths);
                      });
  watcher.SetFiles({dir.File("a"), dir.File("b")});
  EXPECT_THAT(watcher.CheckNow(), IsEmpty());

  WriteFile(dir.File("a"), "ONE");
  EXPECT_THAT(watcher.CheckNow(), ElementsAre(dir.File("a")));
  EXPECT_THAT(watcher.CheckNow(), IsEmpty());

  ASSERT_EQ(unlink(dir.File("b").c_str()), 0);
  EXPECT_THAT(watcher.CheckNow(), ElementsAre(dir.File("b")));
  EXPECT_THAT(events, ElementsAre(ElementsAre(dir.File("a")),
                                  ElementsAre(dir.File("b"))));
}

TEST(FileWatcher, WatchingASecretLeavesNoCopyInFreedMemory) {
  TempDir dir;
  const std::string path = dir.File("secret");
  WriteFile(path, kSecret);
  FreedMemoryScan scan({kSecret});
  {
    FileWatcher watcher(absl::Hours(1), [](const std::vector<std::string>&) {});
    watcher.SetFiles({path});
    WriteFile(path, "rotated-value-0123456789");
    EXPECT_THAT(watcher.CheckNow(), ElementsAre(path));
  }
  EXPECT_EQ(scan.unwiped_blocks(), 0);
}

}  // namespace
}  // namespace treezor::broker
