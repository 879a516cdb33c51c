// google.protobuf.Duration and Timestamp to and from Abseil's types (time_convert.h), on fresh
// random values against the plain arithmetic of the messages' definitions.
#include "proto/wire/time_convert.h"

#include <cstdint>
#include <iostream>
#include <random>

#include "gtest/gtest.h"

namespace kvtier {
namespace {

TEST(TimeConvertTest, DurationsRoundTripWithSameSignedParts) {
  const uint64_t seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> nanos(-int64_t{1} << 50, int64_t{1} << 50);
  for (int i = 0; i < 1000; ++i) {
    const int64_t total = nanos(rng);
    const google::protobuf::Duration proto = ToProtoDuration(absl::Nanoseconds(total));
    EXPECT_EQ(proto.seconds(), total / 1'000'000'000);
    EXPECT_EQ(proto.nanos(), total % 1'000'000'000);
    EXPECT_EQ(FromProtoDuration(proto), absl::Nanoseconds(total));
  }
  EXPECT_EQ(FromProtoDuration(google::protobuf::Duration()), absl::ZeroDuration());
}

TEST(TimeConvertTest, TimestampsRoundTripWithNonNegativeNanos) {
  const uint64_t seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> nanos(-int64_t{1} << 60, int64_t{1} << 60);
  for (int i = 0; i < 1000; ++i) {
    const int64_t since_epoch = nanos(rng);
    const absl::Time time = absl::FromUnixNanos(since_epoch);
    const google::protobuf::Timestamp proto = ToProtoTimestamp(time);
    EXPECT_GE(proto.nanos(), 0);
    EXPECT_LT(proto.nanos(), 1'000'000'000);
    EXPECT_EQ(int64_t{proto.seconds()} * 1'000'000'000 + proto.nanos(), since_epoch);
    EXPECT_EQ(FromProtoTimestamp(proto), time);
  }
}

}  // namespace
}  // namespace kvtier
