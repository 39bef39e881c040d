#include "tests/bench/process_stats.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace treezor::broker::bench {

absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid);
  std::ifstream status(dir + "/status");
  std::ifstream stat(dir + "/stat");
  if (!status || !stat) {
    return absl::NotFoundError(absl::StrCat("no process ", pid));
  }
  ProcessStats out;
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    int64_t* field = nullptr;
    if (absl::ConsumePrefix(&rest, "VmRSS:")) {
      field = &out.rss_kb;
    } else if (absl::ConsumePrefix(&rest, "VmHWM:")) {
      field = &out.peak_rss_kb;
    } else if (absl::ConsumePrefix(&rest, "Threads:")) {
      field = &out.threads;
    }
    if (field == nullptr) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, " kB");
    (void)absl::SimpleAtoi(rest, field);
  }
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so
  // split after the last ')'. utime and stime are fields 14 and 15.
  std::stringstream contents;
  contents << stat.rdbuf();
  const std::string text = contents.str();
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) {
    return absl::InternalError(absl::StrCat(dir, "/stat: unexpected format"));
  }
  const std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(text).substr(paren + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::InternalError(absl::StrCat(dir, "/stat: unexpected format"));
  }
  out.cpu_seconds = static_cast<double>(utime + stime) /
                    static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    ++out.open_fds;
  }
  return out;
}

}  // namespace treezor::broker::bench
