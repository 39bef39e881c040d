// Flags of one treezor-token command: `--name VALUE`, `--name=VALUE`,
// boolean `--name`, repeatable flags, and `-h` as `--help`. Hand-written
// because absl flags are process-global (one set for every subcommand) and
// print a noisy --help.
//
//   std::vector<FlagSpec> specs = {{"tenant", FlagSpec::kValue},
//                                  {"scope", FlagSpec::kRepeated},
//                                  {"help", FlagSpec::kBool}};
//   absl::StatusOr<ParsedFlags> f = ParseFlags(args, specs);
//   f->Get("tenant"); f->GetAll("scope"); f->Has("help");
#ifndef TREEZOR_BROKER_CLIENT_CLI_ARG_PARSER_H_
#define TREEZOR_BROKER_CLIENT_CLI_ARG_PARSER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace treezor::client::cli {

struct FlagSpec {
  enum Kind { kBool, kValue, kRepeated };
  std::string name;  // without "--"
  Kind kind;
};

class ParsedFlags {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The value of a kValue flag (the last one if given twice).
  std::optional<std::string> Get(const std::string& name) const;
  std::vector<std::string> GetAll(const std::string& name) const;

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(
      absl::Span<const std::string> args, absl::Span<const FlagSpec> specs);
  std::map<std::string, std::vector<std::string>> values_;
};

// INVALID_ARGUMENT with a one-line message for an unknown flag, a missing
// value, a value given to a boolean flag, or a positional argument.
absl::StatusOr<ParsedFlags> ParseFlags(absl::Span<const std::string> args,
                                       absl::Span<const FlagSpec> specs);

}  // namespace treezor::client::cli

#endif  // TREEZOR_BROKER_CLIENT_CLI_ARG_PARSER_H_
