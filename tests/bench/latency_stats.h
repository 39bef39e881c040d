// Latency samples and their summary (throughput, p50/p90/p99/p99.9) for the
// benchmarks under tests/bench/.
//
//   LatencyStats stats;
//   stats.Add(absl::Microseconds(180));         // one per call
//   LatencySummary s = stats.Summarize(absl::Seconds(2));
//   std::cout << s.p99_us << "\n";
//
// Percentiles are nearest-rank on the exact samples (no histogram buckets),
// so p99.9 of 100 000 samples is the 99 900th smallest. Every benchmark call
// is kept: runs are bounded in calls and time, so memory stays bounded too.
//
// Thread-safety: LatencyStats is not thread-safe; give each thread or each
// sequential call slot its own and Merge() them afterwards.
#ifndef TREEZOR_BROKER_TESTS_BENCH_LATENCY_STATS_H_
#define TREEZOR_BROKER_TESTS_BENCH_LATENCY_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace treezor::broker::bench {

struct LatencySummary {
  int64_t calls = 0;
  int64_t errors = 0;
  double seconds = 0;     // wall time the calls ran in
  double throughput = 0;  // successful calls per second
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

class LatencyStats {
 public:
  void Add(absl::Duration latency) {
    samples_ns_.push_back(absl::ToInt64Nanoseconds(latency));
  }
  void AddError() { ++errors_; }
  void Merge(const LatencyStats& other);
  int64_t count() const { return static_cast<int64_t>(samples_ns_.size()); }
  int64_t errors() const { return errors_; }

  // `elapsed`: the wall time the samples were taken in (for throughput).
  LatencySummary Summarize(absl::Duration elapsed) const;

 private:
  std::vector<int64_t> samples_ns_;
  int64_t errors_ = 0;
};

// `{"calls":..,"errors":..,"throughput":..,"p50_us":..,...}`
std::string SummaryJson(const LatencySummary& s);

}  // namespace treezor::broker::bench

#endif  // TREEZOR_BROKER_TESTS_BENCH_LATENCY_STATS_H_
