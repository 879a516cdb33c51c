#include "shard/attention_service.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/status_convert.h"
#include "shard/step_stream.h"

namespace kvtier {
namespace {

// A stream refused on arrival: it ends with `status` without reading anything.
class RefusedStream final : public grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse>* AttentionServiceImpl::Step(
    grpc::CallbackServerContext* /*context*/) {
  if (streams_.fetch_add(1) >= max_streams_) {
    streams_.fetch_sub(1);
    metrics_->StreamFailed(absl::StatusCode::kResourceExhausted);
    return new RefusedStream(absl::ResourceExhaustedError(
        absl::StrCat("Step: this shard serves at most ", max_streams_,
                     " concurrent streams (max_streams); try again later")));
  }
  metrics_->StreamOpened();
  return new StepStream(state_, executor_, metrics_, inline_kv_bytes_, [this] {
    metrics_->StreamClosed();
    streams_.fetch_sub(1);
  });
}

}  // namespace kvtier
