#include "server/config_field_checks.h"

#include <sys/stat.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/proto_time.h"
#include "server/quote.h"
#include "server/scope_set.h"
#include "server/secret_reader.h"

namespace treezor::broker::internal {

bool RequireAbsolutePath(const std::string& path, const std::string& file,
                         ConfigProblems& problems) {
  if (!file.empty() && file.front() == '/') return true;
  problems.Add(path, absl::StrCat(Quote(file),
                                  " must be an absolute path (the broker's "
                                  "working directory is not part of its "
                                  "config)"));
  return false;
}

void CheckFilePermissions(const std::string& path, const std::string& file,
                          FileKind kind, ConfigProblems& problems) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return;
  const std::string mode = absl::StrFormat("%04o", st.st_mode & 07777);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    problems.Add(
        path, absl::StrCat(Quote(file), " may be written by its group or "
                           "others (mode ", mode, "): whoever can write it "
                           "decides what the broker trusts, presents or "
                           "sends; make it writable by its owner only "
                           "(chmod go-w)"));
  }
  if (kind == FileKind::kPrivate && (st.st_mode & S_IROTH) != 0) {
    problems.AddWarning(
        path, absl::StrCat(Quote(file), " is readable by others (mode ", mode,
                           "): every local user can read this secret; make "
                           "it unreadable by others (chmod o-rwx; on "
                           "Kubernetes, a Secret volume with defaultMode "
                           "0440 and an fsGroup)"));
  }
}

void RequireFile(const std::string& path, const std::string& file,
                 FileKind kind, ConfigProblems& problems) {
  if (file.empty()) {
    problems.Add(path, "required");
    return;
  }
  if (!RequireAbsolutePath(path, file, problems)) return;
  absl::StatusOr<Secret> content = ReadWholeFile(file);
  if (!content.ok()) {
    problems.Add(path, content.status().message());
  } else if (content->empty()) {
    problems.Add(path, absl::StrCat(Quote(file), " is empty"));
  } else {
    CheckFilePermissions(path, file, kind, problems);
  }
}

void RequirePositive(const std::string& path,
                     const google::protobuf::Duration& d,
                     ConfigProblems& problems) {
  if (FromProtoDuration(d) <= absl::ZeroDuration()) {
    problems.Add(path,
                 absl::StrCat("must be positive, got ",
                              absl::FormatDuration(FromProtoDuration(d))));
  }
}

void RequireDurationIn(const std::string& path,
                       const google::protobuf::Duration& d, absl::Duration min,
                       absl::Duration max, ConfigProblems& problems) {
  const absl::Duration v = FromProtoDuration(d);
  if (v < min || v > max) {
    problems.Add(path, absl::StrCat("must be in [", absl::FormatDuration(min),
                                    ", ", absl::FormatDuration(max),
                                    "], got ", absl::FormatDuration(v)));
  }
}

namespace {

// 4194304 -> "4194304 (4 MiB)"; 1000 -> "1000".
std::string ShowCount(int64_t v) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  constexpr int64_t kGiB = int64_t{1} << 30;
  if (v > 0 && v % kGiB == 0) return absl::StrCat(v, " (", v / kGiB, " GiB)");
  if (v > 0 && v % kMiB == 0) return absl::StrCat(v, " (", v / kMiB, " MiB)");
  return absl::StrCat(v);
}

}  // namespace

void RequireIntIn(const std::string& path, int64_t v, int64_t min,
                  int64_t max, ConfigProblems& problems) {
  if (v < min || v > max) {
    problems.Add(path, absl::StrCat("must be in [", ShowCount(min), ", ",
                                    ShowCount(max), "], got ", ShowCount(v)));
  }
}

void ValidateScopes(
    const std::string& path,
    const google::protobuf::RepeatedPtrField<std::string>& scopes,
    ConfigProblems& problems) {
  for (int i = 0; i < scopes.size(); ++i) {
    problems.Add(ValidateScope(scopes[i], Index(path, i)));
  }
}

namespace {

// The longest identity accepted: a SPIFFE ID is at most 2048 bytes; a DNS
// name 253, a CN 64.
constexpr size_t kMaxUriIdentity = 2048;
constexpr size_t kMaxNameIdentity = 253;

// Length of the RFC 3986 scheme that starts `s` (ALPHA *( ALPHA / DIGIT /
// "+" / "-" / "." ) followed by ":"), or 0 when `s` does not start with one.
size_t SchemeLength(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) {
    return 0;
  }
  for (size_t i = 1; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ':') return i;
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') return 0;
  }
  return 0;
}

}  // namespace

void ValidateIdentity(const std::string& path, const std::string& identity,
                      ConfigProblems& problems) {
  constexpr absl::string_view kWhat =
      "an identity is a URI with a scheme (spiffe://trust.domain/workload) or "
      "a DNS name / certificate CN";
  for (size_t i = 0; i < identity.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(identity[i]);
    if (c < 0x20 || c == 0x7f || absl::ascii_isspace(c)) {
      problems.Add(path, absl::StrCat(Quote(identity, 80),
                                      " contains whitespace or a control "
                                      "character (byte ",
                                      i, "): ", kWhat));
      return;
    }
  }
  const size_t scheme = SchemeLength(identity);
  if (scheme == 0) {
    if (identity.size() > kMaxNameIdentity) {
      problems.Add(path, absl::StrCat(Quote(identity, 80), " is longer than ",
                                      kMaxNameIdentity,
                                      " bytes, the longest DNS name"));
    }
    return;
  }
  const absl::string_view rest = absl::string_view(identity).substr(scheme + 1);
  if (identity.size() > kMaxUriIdentity) {
    problems.Add(path, absl::StrCat(Quote(identity, 80), " is longer than ",
                                    kMaxUriIdentity, " bytes"));
  } else if (rest.empty()) {
    problems.Add(path, absl::StrCat(Quote(identity),
                                    " is a URI scheme with nothing after it: ",
                                    kWhat));
  } else if (absl::EqualsIgnoreCase(identity.substr(0, scheme), "spiffe") &&
             (!absl::StartsWith(rest, "//") || rest.size() == 2 ||
              rest[2] == '/')) {
    problems.Add(path,
                 absl::StrCat(Quote(identity),
                              " is not a SPIFFE ID: expected "
                              "spiffe://<trust domain>/<workload path>"));
  }
}

}  // namespace treezor::broker::internal
