#include "shard/step_batch.h"

#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/model_spec.h"

namespace kvtier {
namespace {

// Checks one sequence's positions against its leased blocks of `block_size` tokens.
absl::Status CheckSequence(const v1::SequenceStep& sequence, int index, int block_size) {
  const std::string field = absl::StrCat("plan.sequences[", index, "].");
  if (sequence.num_new_tokens() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, "num_new_tokens: expected at least 1, got ", sequence.num_new_tokens()));
  }
  if (sequence.num_new_tokens() > sequence.context_len()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "num_new_tokens: ", sequence.num_new_tokens(), " exceeds context_len ",
                     sequence.context_len()));
  }
  const int num_blocks = sequence.lease().blocks_size();
  if (sequence.context_len() > int64_t{num_blocks} * block_size) {
    return absl::InvalidArgumentError(absl::StrCat(field, "context_len: ", sequence.context_len(),
                                                   " exceeds the lease's ", num_blocks,
                                                   " blocks x ", block_size, " tokens"));
  }
  return absl::OkStatus();
}

// The plan's stated tensor shapes against what this slot holds for `num_tokens` new tokens.
absl::Status CheckShapes(const v1::LayerShapes& got, const v1::LayerShapes& want) {
  const struct {
    const char* field;
    int got;
    int want;
  } counts[] = {{"num_tokens", got.num_tokens(), want.num_tokens()},
                {"num_q_heads", got.num_q_heads(), want.num_q_heads()},
                {"num_kv_heads", got.num_kv_heads(), want.num_kv_heads()},
                {"head_dim", got.head_dim(), want.head_dim()}};
  for (const auto& count : counts) {
    if (count.got != count.want) {
      return absl::InvalidArgumentError(absl::StrCat("plan.shapes.", count.field, ": expected ",
                                                     count.want, ", got ", count.got));
    }
  }
  if (got.dtype() != want.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat("plan.shapes.dtype: expected ",
                                                   v1::Dtype_Name(want.dtype()), ", got ",
                                                   v1::Dtype_Name(got.dtype())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StepBatch> StepBatch::Build(const v1::StepPlan& plan, const HostedModel& model) {
  const KvPoolShape& shape = model.pool().shape();
  if (plan.slot() != model.range().slot()) {
    return absl::FailedPreconditionError(
        absl::StrCat("plan.slot: this shard holds slot ", model.range().slot(), " of model ",
                     model.spec().id().name(), ", got ", plan.slot()));
  }
  if (plan.sequences().empty()) {
    return absl::InvalidArgumentError("plan.sequences: expected at least one sequence");
  }
  int64_t num_tokens = 0;
  size_t num_block_ids = 0;
  // Each session's index in the plan. NOTE: two sequences of one session write and read the
  // same block table in one pass, so their rows would attend over each other's K/V; disjoint
  // positions give nothing one sequence with more new tokens does not, so a session appears
  // at most once per step.
  absl::flat_hash_map<std::string_view, int> session_index;
  for (int i = 0; i < plan.sequences_size(); ++i) {
    const v1::SequenceStep& sequence = plan.sequences(i);
    if (absl::Status status = CheckSequence(sequence, i, shape.block_size); !status.ok()) {
      return status;
    }
    const auto [earlier, inserted] = session_index.emplace(sequence.lease().session_id(), i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plan.sequences[", i, "].lease.session_id: the same session as plan.sequences[",
          earlier->second, "]; a session may appear at most once per step"));
    }
    num_tokens += sequence.num_new_tokens();
    num_block_ids += sequence.lease().blocks_size();
  }
  if (num_tokens > kMaxTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan.sequences: ", num_tokens, " new tokens in all, at most ", kMaxTokens));
  }
  if (absl::Status status = CheckShapes(
          plan.shapes(),
          LayerShapesFor(model.spec(), model.range().heads(), static_cast<int>(num_tokens)));
      !status.ok()) {
    return status;
  }

  StepBatch batch;
  batch.num_q_heads_ = shape.num_kv_heads * GqaGroupSize(model.spec());
  batch.out_bytes_ = num_tokens * batch.num_q_heads_ * shape.head_dim * DTypeSize(shape.dtype);
  // Reserved up front: the layouts' spans point into it.
  batch.block_ids_.reserve(num_block_ids);
  batch.sequences_.reserve(plan.sequences_size());
  batch.slots_.reserve(num_tokens);
  const int64_t block_size = shape.block_size;
  for (const v1::SequenceStep& sequence : plan.sequences()) {
    const auto& blocks = sequence.lease().blocks();
    const size_t begin = batch.block_ids_.size();
    batch.block_ids_.insert(batch.block_ids_.end(), blocks.begin(), blocks.end());
    batch.sequences_.push_back(SequenceLayout{
        .block_table = absl::MakeConstSpan(batch.block_ids_).subspan(begin, blocks.size()),
        .context_len = sequence.context_len(),
        .num_queries = sequence.num_new_tokens(),
    });
    batch.attended_kv_bytes_ += 2 * sequence.context_len() * shape.token_bytes();
    for (int64_t p = sequence.context_len() - sequence.num_new_tokens(); p < sequence.context_len();
         ++p) {
      batch.slots_.push_back(blocks[p / block_size] * block_size + p % block_size);
    }
  }
  return batch;
}

}  // namespace kvtier
