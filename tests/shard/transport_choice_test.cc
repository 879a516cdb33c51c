// ChooseTransport: NCCL exactly when both sides can use it on distinct GPUs; otherwise AUTO
// falls back to gRPC saying why, and an explicit NCCL request is refused saying why.
#include "shard/transport_choice.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

const std::string kGpuA(16, 'a');
const std::string kGpuB(16, 'b');

v1::DescribeRangeResponse SourceOn(const std::string& uuid) {
  v1::DescribeRangeResponse source;
  source.set_nccl_device_uuid(uuid);
  return source;
}

v1::DescribeRangeResponse SourceWithoutNccl() {
  v1::DescribeRangeResponse source;
  source.set_nccl_unavailable_reason("built without NCCL");
  return source;
}

TEST(TransportChoiceTest, NcclBetweenDistinctGpus) {
  for (v1::Transport requested : {v1::TRANSPORT_UNSPECIFIED, v1::TRANSPORT_NCCL}) {
    const absl::StatusOr<TransportChoice> choice =
        ChooseTransport(requested, kGpuA, SourceOn(kGpuB));
    ASSERT_TRUE(choice.ok()) << choice.status();
    EXPECT_EQ(choice->transport, v1::TRANSPORT_NCCL);
    EXPECT_EQ(choice->reason, "");
  }
}

TEST(TransportChoiceTest, GrpcWhenAskedEvenWhereNcclCouldRun) {
  const absl::StatusOr<TransportChoice> choice =
      ChooseTransport(v1::TRANSPORT_GRPC, kGpuA, SourceOn(kGpuB));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->transport, v1::TRANSPORT_GRPC);
  EXPECT_EQ(choice->reason, "");
}

TEST(TransportChoiceTest, AutoFallsBackToGrpcAndNcclIsRefusedSayingWhy) {
  struct Case {
    const char* what;
    absl::StatusOr<std::string> local;
    v1::DescribeRangeResponse source;
    std::string why;
  };
  const Case cases[] = {
      {"a destination in host memory",
       absl::FailedPreconditionError("the pool is not in CUDA device memory"), SourceOn(kGpuB),
       "this shard cannot use it: the pool is not in CUDA device memory"},
      {"a source without NCCL", kGpuA, SourceWithoutNccl(),
       "the source cannot use it: built without NCCL"},
      {"the same GPU", kGpuA, SourceOn(kGpuA),
       "both pools are on GPU 61616161616161616161616161616161, and NCCL needs a distinct GPU "
       "per rank"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const absl::StatusOr<TransportChoice> automatic =
        ChooseTransport(v1::TRANSPORT_UNSPECIFIED, c.local, c.source);
    ASSERT_TRUE(automatic.ok()) << automatic.status();
    EXPECT_EQ(automatic->transport, v1::TRANSPORT_GRPC);
    EXPECT_EQ(automatic->reason, "NCCL not used: " + c.why);

    const absl::StatusOr<TransportChoice> nccl =
        ChooseTransport(v1::TRANSPORT_NCCL, c.local, c.source);
    EXPECT_EQ(nccl.status().code(), absl::StatusCode::kFailedPrecondition) << nccl.status();
    EXPECT_THAT(nccl.status().message(), HasSubstr("transport: NCCL requested, but " + c.why));
  }
}

}  // namespace
}  // namespace kvtier
