// LatencyHistogram against a sorted-array reference on fresh random values: every reported
// percentile is within the bucket's half width (1/128) of the value of the same rank, and
// merging gives the histogram of the union.
#include "client/load/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace kvtier {
namespace {

constexpr double kQuantiles[] = {0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1};

// The value of rank ceil(q * n) (at least 1) of `sorted`.
int64_t ReferencePercentile(const std::vector<int64_t>& sorted, double q) {
  const int64_t n = static_cast<int64_t>(sorted.size());
  const int64_t rank = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(q * n - 1e-9)), 1, n);
  return sorted[rank - 1];
}

void ExpectMatchesReference(const LatencyHistogram& histogram, std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  ASSERT_EQ(histogram.count(), static_cast<int64_t>(values.size()));
  EXPECT_EQ(histogram.min(), values.front());
  EXPECT_EQ(histogram.max(), values.back());
  double sum = 0;
  for (int64_t value : values) sum += value;
  EXPECT_NEAR(histogram.mean(), sum / values.size(), 1e-9 * sum);
  for (double q : kQuantiles) {
    const int64_t want = ReferencePercentile(values, q);
    EXPECT_NEAR(histogram.Percentile(q), want, want / 128.0 + 0.5) << "q " << q;
  }
}

class LatencyHistogramTest : public ::testing::Test {
 protected:
  // Log-normal latencies around 200 us in ns, a heavy tail of stalls, and small values.
  std::vector<int64_t> Values(int count) {
    std::lognormal_distribution<double> latency(std::log(2e5), 1.5);
    std::vector<int64_t> values;
    for (int i = 0; i < count; ++i) {
      const double pick = std::uniform_real_distribution<double>()(rng_);
      values.push_back(pick < 0.05 ? static_cast<int64_t>(rng_() % 100)
                                   : static_cast<int64_t>(latency(rng_)));
    }
    return values;
  }

  const uint64_t seed_ = std::random_device()();
  std::mt19937_64 rng_{seed_};
};

TEST_F(LatencyHistogramTest, PercentilesMatchASortedReference) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  for (int count : {1, 2, 7, 1000, 100000}) {
    SCOPED_TRACE(testing::Message() << count << " values");
    const std::vector<int64_t> values = Values(count);
    LatencyHistogram histogram;
    for (int64_t value : values) histogram.Record(value);
    ExpectMatchesReference(histogram, values);
  }
}

TEST_F(LatencyHistogramTest, MergingGivesTheHistogramOfTheUnion) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  std::vector<int64_t> all;
  LatencyHistogram merged;
  for (int part = 0; part < 5; ++part) {
    const std::vector<int64_t> values = Values(1 + static_cast<int>(rng_() % 5000));
    LatencyHistogram histogram;
    for (int64_t value : values) histogram.Record(value);
    merged.Merge(histogram);
    all.insert(all.end(), values.begin(), values.end());
  }
  merged.Merge(LatencyHistogram());
  ExpectMatchesReference(merged, all);
}

TEST(LatencyHistogramEmptyTest, ReportsZeros) {
  const LatencyHistogram empty;
  EXPECT_EQ(empty.count(), 0);
  EXPECT_EQ(empty.Percentile(0.99), 0);
  EXPECT_EQ(empty.max(), 0);
  EXPECT_EQ(empty.mean(), 0);
}

}  // namespace
}  // namespace kvtier
