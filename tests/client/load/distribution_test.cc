// Distribution: the flag forms parse (and bad ones are refused naming the flag), and samples
// on fresh seeds have the distribution's bounds and mean (within 6 standard errors).
#include "client/load/distribution.h"

#include <cmath>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

TEST(DistributionTest, ParsesEveryForm) {
  EXPECT_EQ(Distribution::Parse("--x", "16")->ToString(), "const:16");
  EXPECT_EQ(Distribution::Parse("--x", "const:2.5")->ToString(), "const:2.5");
  EXPECT_EQ(Distribution::Parse("--x", "uniform:4:12")->ToString(), "uniform:4:12");
  EXPECT_EQ(Distribution::Parse("--x", "lognormal:200:0.5")->ToString(), "lognormal:200:0.5");
  EXPECT_EQ(Distribution::Parse("--x", "exp:30")->ToString(), "exp:30");
}

TEST(DistributionTest, RefusesBadFormsNamingTheFlag) {
  for (const char* bad : {"", "x", "-1", "uniform:9", "uniform:9:3", "exp:1:2", "gauss:1",
                          "lognormal:1", "const:nan", "const:inf"}) {
    absl::StatusOr<Distribution> parsed = Distribution::Parse("--prompt_tokens", bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("--prompt_tokens: expected"));
    EXPECT_THAT(parsed.status().message(), HasSubstr(absl::StrCat("got \"", bad, "\"")));
  }
}

TEST(DistributionTest, SamplesHaveTheBoundsAndTheMean) {
  const uint64_t seed = std::random_device()();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  struct Case {
    const char* text;
    double lo, hi;  // bounds of every sample
    double stddev;  // of one sample
  };
  const Case cases[] = {
      {"const:7", 7, 7, 0},
      {"uniform:4:12", 4, 12, 8 / std::sqrt(12.0)},
      {"exp:30", 0, INFINITY, 30},
      {"lognormal:200:0.5", 0, INFINITY, 200 * std::exp(0.125) * std::sqrt(std::exp(0.25) - 1)},
  };
  constexpr int kSamples = 20000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const Distribution d = *Distribution::Parse("--x", c.text);
    double sum = 0;
    for (int i = 0; i < kSamples; ++i) {
      const double value = d.Sample(rng);
      ASSERT_GE(value, c.lo);
      ASSERT_LE(value, c.hi);
      sum += value;
    }
    EXPECT_NEAR(sum / kSamples, d.mean(), 6 * c.stddev / std::sqrt(kSamples) + 1e-9);
  }
}

TEST(DistributionTest, CountsAreRoundedAndBoundedBelow) {
  std::mt19937_64 rng{std::random_device()()};
  const Distribution d = *Distribution::Parse("--x", "uniform:0:3");
  for (int i = 0; i < 1000; ++i) {
    const int count = d.SampleCount(rng, 1);
    ASSERT_GE(count, 1);
    ASSERT_LE(count, 3);
  }
}

}  // namespace
}  // namespace kvtier
