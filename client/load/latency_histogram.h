// LatencyHistogram: a mergeable histogram of durations (or any non-negative counts) with
// log-linear buckets, as HdrHistogram lays them out: exact below 2^kSubBucketBits, then
// 2^kSubBucketBits buckets per power of two, so a percentile read from it is within 1/128 of a
// recorded value (the bucket's midpoint stands for its values). Memory grows with the largest
// value recorded (about 3 KiB for values up to a minute in nanoseconds), not with the count.
//
// Merging two histograms gives exactly the histogram of the union of their values, so
// per-session, per-slice and whole-run histograms are built by merging.
//
// Thread-compatible: callers lock (LoadRecorder holds them under its mutex).
#ifndef KVTIER_CLIENT_LOAD_LATENCY_HISTOGRAM_H_
#define KVTIER_CLIENT_LOAD_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace kvtier {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 6;

  // Negative values count as 0.
  void Record(int64_t value);
  void RecordDuration(absl::Duration duration) { Record(absl::ToInt64Nanoseconds(duration)); }
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The value at quantile q in [0, 1]: the recorded value of rank ceil(q * count) (at least
  // 1) in sorted order, to within its bucket's half width, clamped to [min, max]. 0 when empty.
  int64_t Percentile(double q) const;

 private:
  static int BucketOf(int64_t value);
  static int64_t BucketMidpoint(int bucket);

  std::vector<int64_t> buckets_;  // counts, indexed by BucketOf; grown on demand
  int64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LATENCY_HISTOGRAM_H_
