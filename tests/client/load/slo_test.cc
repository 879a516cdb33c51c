// Slo: --slo's targets parsed, printed back and checked against a session's samples; a bad
// part is refused naming it.
#include "client/load/slo.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

TEST(SloTest, ParsesTargets) {
  const absl::StatusOr<Slo> slo = Slo::Parse("token_p99=20ms,ttft_max=1.5s");
  ASSERT_TRUE(slo.ok()) << slo.status();
  ASSERT_EQ(slo->targets().size(), 2u);
  EXPECT_FALSE(slo->targets()[0].ttft);
  EXPECT_EQ(slo->targets()[0].quantile, 0.99);
  EXPECT_EQ(slo->targets()[0].limit, absl::Milliseconds(20));
  EXPECT_TRUE(slo->targets()[1].ttft);
  EXPECT_EQ(slo->targets()[1].quantile, 1.0);
  EXPECT_EQ(slo->ToString(), "token_p99=20ms,ttft_max=1.5s");
  EXPECT_TRUE(Slo::Parse("")->empty());
}

TEST(SloTest, MetOverTheSessionsOwnSamples) {
  const Slo slo = *Slo::Parse("token_p50=10ms,ttft_max=100ms");
  LatencyHistogram token, ttft;
  for (int ms : {1, 2, 30}) token.RecordDuration(absl::Milliseconds(ms));
  ttft.RecordDuration(absl::Milliseconds(90));
  EXPECT_TRUE(slo.Met(token, ttft));
  ttft.RecordDuration(absl::Milliseconds(101));
  EXPECT_FALSE(slo.Met(token, ttft));
  EXPECT_TRUE(slo.Met(LatencyHistogram(), LatencyHistogram()));  // nothing to miss
}

TEST(SloTest, ABadPartIsNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {"token_p98=2ms", "--slo: \"token_p98=2ms\": expected token or ttft"},
      {"tpot_p99=2ms", "--slo: \"tpot_p99=2ms\": expected token or ttft"},
      {"token_p99=20ms,ttft_p99", "--slo: \"ttft_p99\": expected NAME=DURATION"},
      {"ttft_p99=fast", "--slo: \"ttft_p99=fast\": expected NAME=DURATION"},
      {"ttft_p99=-1s", "--slo: \"ttft_p99=-1s\": expected NAME=DURATION with a duration > 0"},
      {"token_p99=1ms,token_p99=2ms", "--slo: \"token_p99=2ms\": expected each target once"},
  };
  for (const auto& [text, message] : cases) {
    const absl::StatusOr<Slo> slo = Slo::Parse(text);
    ASSERT_FALSE(slo.ok()) << text;
    EXPECT_EQ(slo.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(slo.status().message(), HasSubstr(message)) << text;
  }
}

}  // namespace
}  // namespace kvtier
