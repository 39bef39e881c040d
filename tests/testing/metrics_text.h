// Reading Prometheus' text exposition (what /metrics and
// BrokerMetrics::Render() return) in tests.
//
//   EXPECT_EQ(SampleValue(harness.metrics().Render(),
//                         R"(treezor_broker_cache_requests_total{result="hit"})"),
//             3);
#ifndef TREEZOR_BROKER_TESTS_TESTING_METRICS_TEXT_H_
#define TREEZOR_BROKER_TESTS_TESTING_METRICS_TEXT_H_

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace treezor::broker::testing {

// The value of the sample whose line starts with `series` (name and labels
// exactly as exposed), or -1 when absent.
inline double SampleValue(absl::string_view exposition,
                          absl::string_view series) {
  const std::string prefix = absl::StrCat(series, " ");
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    double value = 0;
    if (absl::StartsWith(line, prefix) &&
        absl::SimpleAtod(line.substr(prefix.size()), &value)) {
      return value;
    }
  }
  return -1;
}

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_METRICS_TEXT_H_
