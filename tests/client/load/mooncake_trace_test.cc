// The Mooncake trace parser as kvtier-load reads --trace: the committed head of the trace
// parses; a bad line is refused naming the line and field; a request's tokens, at full and at
// scaled lengths, give equal ids equal tokens and the last block its share.
#include "client/load/mooncake_trace.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

TEST(MooncakeTraceTest, TheHeadParses) {
  const absl::StatusOr<std::vector<TraceRequest>> trace = ReadMooncakeTrace(KVTIER_TRACE_HEAD);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 300u);
  EXPECT_TRUE(std::is_sorted(trace->begin(), trace->end(),
                             [](const TraceRequest& a, const TraceRequest& b) {
                               return a.timestamp_ms < b.timestamp_ms;
                             }));
}

TEST(MooncakeTraceTest, ABadLineIsNamed) {
  const absl::StatusOr<std::vector<TraceRequest>> trace = ParseMooncakeTrace(
      "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1, 2]}\n"
      "{\"timestamp\": 5, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1]}\n");
  ASSERT_FALSE(trace.ok());
  EXPECT_THAT(trace.status().message(), HasSubstr("line 2: hash_ids: expected 2 ids"));
  EXPECT_EQ(ReadMooncakeTrace("/nonexistent.jsonl").status().code(), absl::StatusCode::kNotFound);
}

TEST(MooncakeTraceTest, EqualIdsGiveEqualTokensAtEveryScale) {
  const TraceRequest a{0, 1000, 1, {3, 4}}, b{0, 1030, 1, {3, 5, 6}};
  const std::vector<int32_t> full_a = RequestTokens(a), full_b = RequestTokens(b);
  ASSERT_EQ(full_a.size(), 1000u);
  ASSERT_EQ(full_b.size(), 1030u);
  EXPECT_TRUE(std::equal(full_a.begin(), full_a.begin() + 512, full_b.begin()));
  EXPECT_NE(std::vector<int32_t>(full_a.begin() + 512, full_a.end()),
            std::vector<int32_t>(full_b.begin() + 512, full_b.begin() + 1000));
  EXPECT_EQ(ScaledBlockTokens(1.0 / 32), 16);
  EXPECT_EQ(ScaledBlockTokens(1e-6), 1);
  const std::vector<int32_t> small_a = RequestTokens(a, 16), small_b = RequestTokens(b, 16);
  EXPECT_EQ(small_a.size(), 16u + 15);  // 488 of 512 tokens: 15.25 of 16
  EXPECT_EQ(small_b.size(), 32u + 1);   // 6 of 512: at least 1
  // A scaled block is the start of the full one.
  EXPECT_TRUE(std::equal(small_a.begin(), small_a.begin() + 16, full_a.begin()));
  EXPECT_TRUE(std::equal(small_a.begin(), small_a.begin() + 16, small_b.begin()));
  EXPECT_TRUE(std::equal(small_a.begin() + 16, small_a.end(), full_a.begin() + 512));
  for (int32_t token : full_b) EXPECT_LT(token, 1 << 17);
}

}  // namespace
}  // namespace kvtier
