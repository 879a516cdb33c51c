// StepBatch: a step's plan (v1::StepPlan) turned into what the KvPool takes for every layer:
// the batch's SequenceLayouts, the slot of every new token (sequence by sequence, in token
// order: token p of a sequence lives in slot blocks[p / B] * B + p % B) and the tensor
// geometry of this head range. The block tables are copies the batch owns, so it stays valid
// whatever happens to the request it came from.
//
// Build checks the plan's shape against the hosted range and names the field it rejects;
// leases (signatures, block ids, generations) are HostedModel::AdmitLease's business.
// Immutable once built; safe to share between threads.
#ifndef KVTIER_SHARD_STEP_BATCH_H_
#define KVTIER_SHARD_STEP_BATCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache/kv/attention.h"
#include "kvtier/v1/attention.pb.h"
#include "shard/hosted_model.h"

namespace kvtier {

class StepBatch {
 public:
  // New tokens a step may carry, over all its sequences.
  static constexpr int64_t kMaxTokens = int64_t{1} << 20;

  // INVALID_ARGUMENT naming the field for an empty plan, a sequence with no new tokens or
  // more than its context, a context beyond the leased blocks, a session named by two
  // sequences, or too many tokens in all;
  // FAILED_PRECONDITION when plan.slot is not the slot `model` holds.
  static absl::StatusOr<StepBatch> Build(const v1::StepPlan& plan, const HostedModel& model);

  StepBatch(StepBatch&&) = default;
  StepBatch& operator=(StepBatch&&) = default;
  // The layouts point into block_ids_: a copy would point into the original.
  StepBatch(const StepBatch&) = delete;
  StepBatch& operator=(const StepBatch&) = delete;

  absl::Span<const SequenceLayout> sequences() const { return sequences_; }
  // Where each new token's K/V goes: the leading dimension of k and v.
  absl::Span<const int64_t> slots() const { return slots_; }
  // Query heads of this range: the middle dimension of q and out.
  int num_q_heads() const { return num_q_heads_; }
  // Bytes of one layer's attention output: [tokens][num_q_heads][head_dim].
  int64_t out_bytes() const { return out_bytes_; }
  // Bytes of K and V one layer's attention reads: every sequence's context, this range's heads.
  int64_t attended_kv_bytes() const { return attended_kv_bytes_; }

 private:
  StepBatch() = default;

  std::vector<int32_t> block_ids_;  // every sequence's block table, back to back
  std::vector<SequenceLayout> sequences_;
  std::vector<int64_t> slots_;
  int num_q_heads_ = 0;
  int64_t out_bytes_ = 0;
  int64_t attended_kv_bytes_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_STEP_BATCH_H_
