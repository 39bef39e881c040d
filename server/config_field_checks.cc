#include "server/config_field_checks.h"

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/proto_time.h"
#include "server/quote.h"
#include "server/scope_set.h"
#include "server/secret_reader.h"

namespace treezor::broker::internal {

void RequireFile(const std::string& path, const std::string& file,
                 ConfigProblems& problems) {
  if (file.empty()) {
    problems.Add(path, "required");
    return;
  }
  absl::StatusOr<Secret> content = ReadWholeFile(file);
  if (!content.ok()) {
    problems.Add(path, content.status().message());
  } else if (content->empty()) {
    problems.Add(path, absl::StrCat(Quote(file), " is empty"));
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
