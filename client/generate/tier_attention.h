// TierAttention: the kvtier backend of LayerAttention. A forward pass is one kvtier step over
// one session: BeginStep extends the session with the pass's tokens, each Attend sends the
// layer's q, k, v to the shards, EndStep finishes the step. The session's model must have the
// pass's geometry and fp32 K/V (the LayerAttention tensors are fp32).
//
// Not thread-safe, like the Session it drives.
#ifndef KVTIER_CLIENT_GENERATE_TIER_ATTENTION_H_
#define KVTIER_CLIENT_GENERATE_TIER_ATTENTION_H_

#include <memory>

#include "absl/status/statusor.h"
#include "client/generate/layer_attention.h"
#include "client/session.h"
#include "client/step.h"

namespace kvtier {

class TierAttention final : public LayerAttention {
 public:
  // INVALID_ARGUMENT naming the model field that disagrees with `shape`, or a dtype not fp32.
  static absl::StatusOr<std::unique_ptr<TierAttention>> Create(const AttentionShape& shape,
                                                               std::unique_ptr<Session> session);

  absl::StatusOr<int> BeginStep(int start_pos, absl::Span<const int32_t> tokens) override;
  absl::Status Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                      absl::Span<const float> v, absl::Span<float> out) override;
  absl::Status EndStep() override;

  Session& session() { return *session_; }

 private:
  TierAttention(const AttentionShape& shape, std::unique_ptr<Session> session)
      : pass_(shape), session_(std::move(session)) {}

  LayerPass pass_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Step> step_;  // the pass in flight
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_TIER_ATTENTION_H_
