#include "tests/bench/latency_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace treezor::broker::bench {
namespace {

// Nearest rank: the smallest sample with at least `q` of them at or below.
double PercentileUs(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto n = static_cast<double>(sorted.size());
  size_t rank = static_cast<size_t>(std::ceil(q * n));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

}  // namespace

void LatencyStats::Merge(const LatencyStats& other) {
  samples_ns_.insert(samples_ns_.end(), other.samples_ns_.begin(),
                     other.samples_ns_.end());
  errors_ += other.errors_;
}

LatencySummary LatencyStats::Summarize(absl::Duration elapsed) const {
  LatencySummary s;
  std::vector<int64_t> sorted = samples_ns_;
  std::sort(sorted.begin(), sorted.end());
  s.calls = static_cast<int64_t>(sorted.size());
  s.errors = errors_;
  s.seconds = absl::ToDoubleSeconds(elapsed);
  s.throughput = s.seconds > 0 ? static_cast<double>(s.calls) / s.seconds : 0;
  if (!sorted.empty()) {
    double sum = 0;
    for (int64_t v : sorted) sum += static_cast<double>(v);
    s.mean_us = sum / static_cast<double>(sorted.size()) / 1000.0;
    s.p50_us = PercentileUs(sorted, 0.50);
    s.p90_us = PercentileUs(sorted, 0.90);
    s.p99_us = PercentileUs(sorted, 0.99);
    s.p999_us = PercentileUs(sorted, 0.999);
    s.max_us = static_cast<double>(sorted.back()) / 1000.0;
  }
  return s;
}

std::string SummaryJson(const LatencySummary& s) {
  return absl::StrFormat(
      R"({"calls":%d,"errors":%d,"seconds":%.3f,"throughput":%.1f,)"
      R"("mean_us":%.1f,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,)"
      R"("p999_us":%.1f,"max_us":%.1f})",
      s.calls, s.errors, s.seconds, s.throughput, s.mean_us, s.p50_us,
      s.p90_us, s.p99_us, s.p999_us, s.max_us);
}

}  // namespace treezor::broker::bench
