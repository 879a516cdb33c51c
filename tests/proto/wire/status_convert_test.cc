// Status codes, messages and error reasons across the absl/gRPC edge (status_convert.h,
// error_reason.h).
#include "proto/wire/status_convert.h"

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"

namespace kvtier {
namespace {

TEST(StatusConvertTest, CodeMessageAndReasonSurviveTheRoundTrip) {
  for (v1::ErrorReason reason :
       {v1::ERROR_REASON_REPREFILL_REQUIRED, v1::ERROR_REASON_CONTEXT_CHANGED,
        v1::ERROR_REASON_WRITER_SUPERSEDED}) {
    SCOPED_TRACE(v1::ErrorReason_Name(reason));
    const absl::Status original = WithReason(absl::AbortedError("lost a race"), reason);
    const grpc::Status wire = ToGrpcStatus(original);
    EXPECT_EQ(wire.error_code(), grpc::StatusCode::ABORTED);
    EXPECT_EQ(wire.error_message(), "lost a race");
    // The details are a google.rpc.Status any gRPC client can read.
    google::rpc::Status details;
    ASSERT_TRUE(details.ParseFromString(wire.error_details()));
    EXPECT_EQ(details.code(), static_cast<int>(absl::StatusCode::kAborted));
    ASSERT_EQ(details.details_size(), 1);
    EXPECT_EQ(details.details(0).type_url(), kErrorInfoTypeUrl);

    const absl::Status back = FromGrpcStatus(wire, "Extend");
    EXPECT_EQ(back.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(back.message(), "Extend: lost a race");
    EXPECT_EQ(ReasonOf(back), reason);
  }
}

TEST(StatusConvertTest, StatusWithoutReasonCarriesNoDetails) {
  const grpc::Status wire = ToGrpcStatus(absl::InvalidArgumentError("layer: expected 0..1"));
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(wire.error_details().empty());
  EXPECT_EQ(ReasonOf(FromGrpcStatus(wire)), v1::ERROR_REASON_UNSPECIFIED);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusConvertTest, MalformedDetailsFromAPeerAreIgnored) {
  const grpc::Status wire(grpc::StatusCode::UNAVAILABLE, "down", "\xff\xff not a proto");
  const absl::Status back = FromGrpcStatus(wire);
  EXPECT_EQ(back.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(back), v1::ERROR_REASON_UNSPECIFIED);
}

TEST(ErrorReasonTest, ReprefillRequiredIsAPreconditionWithItsReason) {
  const absl::Status status = ReprefillRequiredError("its K/V was lost");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_EQ(ReasonOf(absl::FailedPreconditionError("its K/V was lost")),
            v1::ERROR_REASON_UNSPECIFIED);
}

TEST(ErrorReasonTest, PrefixedKeepsCodeAndReason) {
  const absl::Status status = Prefixed("plan.sequences[2].", ReprefillRequiredError("lease: x"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "plan.sequences[2].lease: x");
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_TRUE(Prefixed("x", absl::OkStatus()).ok());
}

}  // namespace
}  // namespace kvtier
