// AttentionServiceImpl: the shard's data plane, kvtier.v1.AttentionService (attention.proto). A
// Step stream opens with a plan: the service finds the model's hosted range, builds the batch and
// admits every sequence's lease; then each message's layer tensors are checked, the new
// tokens' K/V written to their slots and this range's slice of the attention output sent
// back. The first error ends the stream with its status; other streams are unaffected.
//
// NOTE: Step uses gRPC's synchronous server API, unlike the callback API used elsewhere: each
// message runs CPU attention kernels that block for milliseconds, and the synchronous server's
// thread per stream is the right executor for blocking compute (a callback reaction must not
// block).
//
// Thread-safe: a Step holds no state beyond its own stream; the shared ShardState is
// thread-safe.
#ifndef KVTIER_SHARD_ATTENTION_SERVICE_H_
#define KVTIER_SHARD_ATTENTION_SERVICE_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "shard/hosted_model.h"
#include "shard/shard_state.h"
#include "shard/step_batch.h"

namespace kvtier {

class AttentionServiceImpl final : public v1::AttentionService::Service {
 public:
  // `state` must outlive the service.
  explicit AttentionServiceImpl(const ShardState* state) : state_(state) {}

  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) override;

 private:
  absl::Status RunStep(grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>& stream) const;

  // One layer of a step: checks, writes the new K/V, attends into `out`.
  static absl::Status RunLayer(HostedModel& model, const v1::StepPlan& plan, const StepBatch& batch,
                               const v1::LayerTensors& layer, std::string& out);

  const ShardState* const state_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_ATTENTION_SERVICE_H_
