// TenantMix: the shares are Zipf's (uniform at skew 0), and draws on a fresh seed land on them
// within a statistical bound.
#include "client/load/tenant_mix.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace kvtier {
namespace {

TEST(TenantMixTest, SharesAreZipf) {
  const TenantMix uniform(4, 0);
  for (int k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(uniform.Probability(k), 0.25);
  const TenantMix skewed(3, 2);
  const double total = 1 + 1 / 4.0 + 1 / 9.0;
  EXPECT_NEAR(skewed.Probability(0), 1 / total, 1e-12);
  EXPECT_NEAR(skewed.Probability(1), 1 / 4.0 / total, 1e-12);
  EXPECT_NEAR(skewed.Probability(2), 1 / 9.0 / total, 1e-12);
  EXPECT_EQ(TenantMix(1, 3).Probability(0), 1);
}

TEST(TenantMixTest, DrawsFollowTheShares) {
  const uint64_t seed = std::random_device()();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (double skew : {0.0, 0.8, 1.5}) {
    const TenantMix mix(6, skew);
    constexpr int kDraws = 60000;
    std::vector<int> counts(6);
    for (int i = 0; i < kDraws; ++i) ++counts[mix.Sample(rng)];
    for (int k = 0; k < 6; ++k) {
      // Binomial: within 6 standard deviations (a false failure about once in 10^8 runs).
      const double p = mix.Probability(k);
      EXPECT_NEAR(counts[k], kDraws * p, 6 * std::sqrt(kDraws * p * (1 - p)))
          << "skew " << skew << ", tenant " << k;
    }
  }
}

}  // namespace
}  // namespace kvtier
