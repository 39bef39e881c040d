#include "server/config_field_checks.h"

#include <sys/stat.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

void ValidateScopes(
    const std::string& path,
    const google::protobuf::RepeatedPtrField<std::string>& scopes,
    ConfigProblems& problems) {
  for (int i = 0; i < scopes.size(); ++i) {
    problems.Add(ValidateScope(scopes[i], Index(path, i)));
  }
}

}  // namespace treezor::broker::internal
