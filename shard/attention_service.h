// AttentionServiceImpl: the shard's data plane, kvtier.v1.AttentionService (attention.proto),
// on gRPC's callback API. Each Step stream is a StepStream (step_stream.h), whose attention
// work runs in its reactions when small (at most `inline_kv_bytes` of K/V a layer) and on the
// shard's bounded StepExecutor otherwise: no thread per stream. At most `max_streams`
// streams are served at once; one more is refused at once with RESOURCE_EXHAUSTED, naming the
// limit, and the others carry on. Streams and steps are counted in the shard's metrics.
//
// Thread-safe: the stream count is an atomic; the shared ShardState is thread-safe.
#ifndef KVTIER_SHARD_ATTENTION_SERVICE_H_
#define KVTIER_SHARD_ATTENTION_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "shard/shard_metrics.h"
#include "shard/shard_state.h"
#include "shard/step_executor.h"

namespace kvtier {

class AttentionServiceImpl final : public v1::AttentionService::CallbackService {
 public:
  // `state`, `executor` and `metrics` must outlive the service and its streams.
  AttentionServiceImpl(const ShardState* state, StepExecutor* executor, ShardMetrics* metrics,
                       int max_streams, int64_t inline_kv_bytes)
      : state_(state),
        executor_(executor),
        metrics_(metrics),
        max_streams_(max_streams),
        inline_kv_bytes_(inline_kv_bytes) {}

  grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse>* Step(
      grpc::CallbackServerContext* context) override;

 private:
  const ShardState* const state_;
  StepExecutor* const executor_;
  ShardMetrics* const metrics_;
  const int max_streams_;
  const int64_t inline_kv_bytes_;
  std::atomic<int> streams_{0};
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_ATTENTION_SERVICE_H_
