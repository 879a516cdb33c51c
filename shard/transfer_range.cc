#include "shard/transfer_range.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "shard/pool_shape.h"

namespace kvtier {
namespace {

constexpr RangeFieldNames kTransferRangeFields = {.model = "range.model.id", .slot = "range.slot"};

bool SamePoolShape(const KvPoolShape& a, const KvPoolShape& b) {
  return a.num_layers == b.num_layers && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim && a.block_size == b.block_size && a.num_blocks == b.num_blocks &&
         a.dtype == b.dtype;
}

}  // namespace

absl::StatusOr<std::shared_ptr<HostedModel>> FindHostedRange(const ShardState& state,
                                                             const v1::ModelId& model, int slot,
                                                             const RangeFieldNames& fields) {
  absl::StatusOr<ShardState::Hosted> hosted = state.Find(fields.model, model);
  if (!hosted.ok()) return hosted.status();
  const v1::HostedRange& range = hosted->model->range();
  if (range.slot() != slot) {
    return absl::NotFoundError(absl::StrCat(fields.slot, ": this shard holds slot ", range.slot(),
                                            " of model \"", model.name(), "\", not ", slot));
  }
  return hosted->model;
}

absl::StatusOr<std::shared_ptr<HostedModel>> FindTransferRange(const ShardState& state,
                                                               const v1::TransferRange& range) {
  const v1::ModelSpec& spec = range.model();
  if (absl::Status status = ValidateModelSpec(spec); !status.ok()) {
    return Prefixed("range.", status);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> hosted =
      FindHostedRange(state, spec.id(), range.slot(), kTransferRangeFields);
  if (!hosted.ok()) return hosted.status();
  if (range.slot() >= spec.num_shards()) {
    return absl::InvalidArgumentError(
        absl::StrCat("range.slot: expected 0..", spec.num_shards() - 1, ", got ", range.slot()));
  }
  // The same spec (so the same placement) gives the same heads: only the pools can differ.
  const v1::HeadRange& held_heads = (*hosted)->range().heads();
  const KvPoolShape requested = PoolShapeFor(spec, held_heads);
  const KvPoolShape& held = (*hosted)->pool().shape();
  const int held_shards = (*hosted)->spec().num_shards();
  if (!SamePoolShape(requested, held) || spec.num_shards() != held_shards) {
    return absl::FailedPreconditionError(
        absl::StrCat("range.model: slot ", range.slot(), " of model \"", spec.id().name(),
                     "\" here is ", held.DebugString(), " over ", HeadRangeString(held_heads),
                     " of ", held_shards, " head ranges; the request's spec gives ",
                     requested.DebugString(), " of ", spec.num_shards()));
  }
  return hosted;
}

v1::TransferRange TransferRangeOf(const HostedModel& model) {
  v1::TransferRange range;
  *range.mutable_model() = model.spec();
  range.set_slot(model.range().slot());
  return range;
}

absl::Status CheckBlockIds(absl::Span<const int32_t> block_ids, int num_blocks) {
  if (block_ids.empty()) return absl::InvalidArgumentError("block_ids: empty");
  absl::flat_hash_map<int32_t, size_t> seen;
  for (size_t i = 0; i < block_ids.size(); ++i) {
    const int32_t block = block_ids[i];
    if (block < 0 || block >= num_blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("block_ids[", i, "]: expected 0..", num_blocks - 1, ", got ", block));
    }
    auto [it, inserted] = seen.emplace(block, i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("block_ids[", i, "]: block ", block,
                                                     " is already block_ids[", it->second, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvtier
