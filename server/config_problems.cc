#include "server/config_problems.h"

#include "absl/strings/str_cat.h"

namespace treezor::broker::internal {

void ConfigProblems::Add(absl::string_view path, absl::string_view problem) {
  lines_.push_back(path.empty() ? std::string(problem)
                                : absl::StrCat(path, ": ", problem));
}

void ConfigProblems::Add(const absl::Status& status) {
  if (!status.ok()) lines_.emplace_back(status.message());
}

void ConfigProblems::AddWithin(absl::string_view parent,
                               const absl::Status& status) {
  if (!status.ok()) {
    lines_.push_back(absl::StrCat(parent, ".", status.message()));
  }
}

void ConfigProblems::AddWarning(absl::string_view path,
                                absl::string_view warning) {
  warnings_.push_back(ConfigWarning{std::string(path), std::string(warning)});
}

absl::Status ConfigProblems::ToStatus(absl::string_view source) const {
  if (lines_.empty()) return absl::OkStatus();
  std::string message;
  for (const std::string& line : lines_) {
    if (!message.empty()) message += '\n';
    absl::StrAppend(&message, source, ": ", line);
  }
  return absl::InvalidArgumentError(message);
}

std::string Field(absl::string_view parent, absl::string_view name) {
  return parent.empty() ? std::string(name) : absl::StrCat(parent, ".", name);
}

std::string Index(absl::string_view parent, size_t i) {
  return absl::StrCat(parent, "[", i, "]");
}

}  // namespace treezor::broker::internal
