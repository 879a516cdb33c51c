#include "client/load/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kvtier {
namespace {

constexpr int64_t kSubBuckets = int64_t{1} << LatencyHistogram::kSubBucketBits;

}  // namespace

// Values below kSubBuckets have a bucket each; above, value v with its highest bit at e
// (e >= kSubBucketBits) falls in octave e - kSubBucketBits + 1, sub-bucket the kSubBucketBits
// bits below the highest.
int LatencyHistogram::BucketOf(int64_t value) {
  if (value < kSubBuckets) return static_cast<int>(value);
  const int e = std::bit_width(static_cast<uint64_t>(value)) - 1;
  const int shift = e - kSubBucketBits;
  const int64_t sub = (value >> shift) & (kSubBuckets - 1);
  return static_cast<int>((shift + 1) * kSubBuckets + sub);
}

int64_t LatencyHistogram::BucketMidpoint(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int shift = bucket / static_cast<int>(kSubBuckets) - 1;
  const int64_t sub = bucket % kSubBuckets;
  const int64_t low = (kSubBuckets + sub) << shift;
  return low + ((int64_t{1} << shift) >> 1);
}

void LatencyHistogram::Record(int64_t value) {
  value = std::max<int64_t>(value, 0);
  const int bucket = BucketOf(value);
  if (bucket >= static_cast<int>(buckets_.size())) buckets_.resize(bucket + 1, 0);
  ++buckets_[bucket];
  min_ = count_ == 0 ? value : std::min(min_, value);
  max_ = std::max(max_, value);
  ++count_;
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (other.buckets_.size() > buckets_.size()) buckets_.resize(other.buckets_.size(), 0);
  for (size_t i = 0; i < other.buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

int64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const int64_t rank = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * count_ - 1e-9)), 1, count_);
  int64_t seen = 0;
  for (size_t bucket = 0; bucket < buckets_.size(); ++bucket) {
    seen += buckets_[bucket];
    if (seen >= rank) return std::clamp(BucketMidpoint(static_cast<int>(bucket)), min_, max_);
  }
  return max_;
}

}  // namespace kvtier
