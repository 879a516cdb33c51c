#include "shard/hosted_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/time_convert.h"
#include "shard/pool_shape.h"

namespace kvtier {
namespace {

void RaiseTo(std::atomic<uint64_t>& value, uint64_t target) {
  uint64_t seen = value.load();
  while (seen < target && !value.compare_exchange_weak(seen, target)) {
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostedModel>> HostedModel::Create(const v1::HostedRange& range,
                                                                 int64_t max_pool_bytes,
                                                                 const PoolFactory& create_pool) {
  if (absl::Status status = ValidateModelSpec(range.model()); !status.ok()) return status;
  const v1::ModelSpec& spec = range.model();
  if (range.slot() < 0 || range.slot() >= spec.num_shards()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot: expected 0..", spec.num_shards() - 1, ", got ", range.slot()));
  }
  const v1::HeadRange& heads = range.heads();
  if (heads.kv_head_begin() < 0 || heads.kv_head_begin() >= heads.kv_head_end() ||
      heads.kv_head_end() > spec.num_kv_heads()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heads: expected a non-empty range of model ", spec.id().name(), "'s KV heads [0, ",
        spec.num_kv_heads(), "), got [", heads.kv_head_begin(), ", ", heads.kv_head_end(), ")"));
  }
  const KvPoolShape shape = PoolShapeFor(spec, heads);
  if (shape.total_bytes() > max_pool_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "slot ", range.slot(), " needs ", shape.total_bytes(), " bytes for its pool (",
        shape.DebugString(), "), ", max_pool_bytes, " are left of this shard's capacity"));
  }
  absl::StatusOr<std::unique_ptr<KvPool>> pool = create_pool(shape);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<HostedModel>(new HostedModel(range, *std::move(pool)));
}

HostedModel::HostedModel(const v1::HostedRange& range, std::unique_ptr<KvPool> pool)
    : range_(range),
      pool_(std::move(pool)),
      generations_(pool_->shape().num_blocks),
      revoked_(pool_->shape().num_blocks) {}

bool HostedModel::Holds(const v1::HostedRange& range) const {
  return google::protobuf::util::MessageDifferencer::Equals(range, range_);
}

absl::Status HostedModel::AdmitLease(const v1::BlockLease& lease, int32_t first_write,
                                     absl::string_view lease_key, absl::Time now) {
  if (!verified_.Verify(lease_key, lease, now)) {
    return absl::PermissionDeniedError("lease: bad signature");
  }
  if (!SameModel(lease.model(), spec().id())) {
    return absl::PermissionDeniedError(absl::StrCat("lease.model: the lease is for model ",
                                                    ModelIdString(lease.model()), ", the step for ",
                                                    ModelIdString(spec().id())));
  }
  if (absl::Status status = CheckIncarnation(lease); !status.ok()) return status;
  if (const absl::Time expires = FromProtoTimestamp(lease.expires_at()); expires < now) {
    return absl::PermissionDeniedError(
        absl::StrCat("lease.expires_at: expired at ", absl::FormatTime(expires)));
  }
  if (absl::Status status = CheckBlocks(lease); !status.ok()) return status;
  if (absl::Status status = CheckLeaseCurrent(lease); !status.ok()) return status;
  if (absl::Status status = AdmitWriter(lease, first_write, now); !status.ok()) return status;
  // NOTE: a newer lease may raise a block between the check above and the raise below; the
  // check before each layer refuses this lease then.
  for (int i = 0; i < lease.blocks_size(); ++i) {
    RaiseTo(generations_[lease.blocks(i)], lease.generations(i));
  }
  return absl::OkStatus();
}

absl::Status HostedModel::CheckLeaseCurrent(const v1::BlockLease& lease) const {
  for (int i = 0; i < lease.blocks_size(); ++i) {
    const uint64_t known = generations_[lease.blocks(i)].load();
    if (known > lease.generations(i)) {
      return StaleBlockError(absl::StrCat("lease.blocks[", i, "]"), lease.blocks(i), known,
                             lease.generations(i));
    }
  }
  absl::MutexLock lock(&fence_mu_);
  auto it = fences_.find(lease.session_id());
  return it == fences_.end() ? absl::OkStatus() : FenceRefuses(it->second, lease);
}

absl::Status HostedModel::FenceRefuses(const WriterFence& fence, const v1::BlockLease& lease) {
  if (fence.revoked) {
    return WithReason(absl::FailedPreconditionError(
                          absl::StrCat("lease.session_id: session ", lease.session_id(),
                                       " was invalidated; open a new session and re-prefill")),
                      v1::ERROR_REASON_INVALIDATED);
  }
  if (fence.epoch > lease.writer_epoch()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "lease.writer_epoch: session ", lease.session_id(), " has a newer writer (epoch ",
        fence.epoch, " > the lease's ", lease.writer_epoch(), "): it was taken over"));
  }
  return absl::OkStatus();
}

absl::Status HostedModel::StaleBlockError(absl::string_view field, int32_t block, uint64_t known,
                                          uint64_t leased) const {
  if (revoked_[block].load() > leased) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          field, ": block ", block, " was invalidated (revoked at generation ",
                          revoked_[block].load(), ", the lease's is ", leased,
                          "); open a new session and re-prefill")),
                      v1::ERROR_REASON_INVALIDATED);
  }
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": block ", block, " was reassigned (generation ", known, " > lease's ", leased, ")"));
}

absl::Status HostedModel::CheckBlockId(absl::string_view field, int32_t block) const {
  const int num_blocks = spec().num_blocks();
  if (block >= 0 && block < num_blocks) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", block, " out of range [0, ", num_blocks, ")"));
}

absl::Status HostedModel::Revoke(const v1::RevokeRequest& request) {
  if (request.blocks_size() != request.generations_size()) {
    return absl::InvalidArgumentError(absl::StrCat("generations: expected one per block (",
                                                   request.blocks_size(), "), got ",
                                                   request.generations_size()));
  }
  for (int i = 0; i < request.blocks_size(); ++i) {
    if (absl::Status status = CheckBlockId(absl::StrCat("blocks[", i, "]"), request.blocks(i));
        !status.ok()) {
      return status;
    }
  }
  {
    absl::MutexLock lock(&fence_mu_);
    for (const v1::RevokedSession& session : request.sessions()) {
      WriterFence& fence = fences_[session.session_id()];
      fence.revoked = true;
      fence.expires_at = std::max(fence.expires_at, FromProtoTimestamp(session.expires_at()));
    }
  }
  for (int i = 0; i < request.blocks_size(); ++i) {
    // Revoked first: a step that sees the raised generation must also see why.
    RaiseTo(revoked_[request.blocks(i)], request.generations(i));
    RaiseTo(generations_[request.blocks(i)], request.generations(i));
  }
  return absl::OkStatus();
}

absl::Status HostedModel::CopyBlocks(
    const google::protobuf::RepeatedPtrField<v1::BlockCopy>& copies) {
  const KvPoolShape& shape = pool_->shape();
  for (int i = 0; i < copies.size(); ++i) {
    const v1::BlockCopy& copy = copies[i];
    const std::string field = absl::StrCat("copies[", i, "].");
    for (const auto& [name, block] : {std::pair<const char*, int32_t>{"source", copy.source()},
                                      std::pair<const char*, int32_t>{"target", copy.target()}}) {
      if (absl::Status status = CheckBlockId(absl::StrCat(field, name), block); !status.ok()) {
        return status;
      }
    }
    if (copy.source() == copy.target()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "target: the source block ", copy.source(), " itself"));
    }
    if (copy.num_tokens() < 1 || copy.num_tokens() > shape.block_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "num_tokens: expected 1..", shape.block_size, ", got ", copy.num_tokens()));
    }
    if (revoked_[copy.source()].load() > copy.source_generation()) {
      return StaleBlockError(absl::StrCat(field, "source"), copy.source(),
                             generations_[copy.source()].load(), copy.source_generation());
    }
  }
  std::string k;
  std::string v;
  std::vector<int64_t> from;
  std::vector<int64_t> to;
  for (const v1::BlockCopy& copy : copies) {
    from.clear();
    to.clear();
    for (int64_t t = 0; t < copy.num_tokens(); ++t) {
      from.push_back(int64_t{copy.source()} * shape.block_size + t);
      to.push_back(int64_t{copy.target()} * shape.block_size + t);
    }
    k.resize(from.size() * shape.token_bytes());
    v.resize(k.size());
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      if (absl::Status status = pool_->ReadKv(layer, from, absl::MakeSpan(k), absl::MakeSpan(v));
          !status.ok()) {
        return status;
      }
      if (absl::Status status = pool_->WriteKv(layer, to, k, v); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

absl::Status HostedModel::AdmitWriter(const v1::BlockLease& lease, int32_t first_write,
                                      absl::Time now) {
  absl::MutexLock lock(&fence_mu_);
  auto it = fences_.find(lease.session_id());
  const WriterFence known = it != fences_.end() ? it->second : WriterFence{};
  // Checked again under this lock: a revocation may have come since CheckLeaseCurrent.
  if (absl::Status status = FenceRefuses(known, lease); !status.ok()) return status;
  const bool newer = it == fences_.end() || lease.writer_epoch() > known.epoch;
  const int32_t writable_from =
      newer ? lease.writable_from() : std::max(known.writable_from, lease.writable_from());
  if (first_write < writable_from) {
    return absl::PermissionDeniedError(
        absl::StrCat("lease.writable_from: the step writes position ", first_write,
                     ", but positions below ", writable_from, " are committed and read-only"));
  }
  WriterFence& fence = fences_[lease.session_id()];
  if (newer) {
    fence = WriterFence{
        .epoch = lease.writer_epoch(), .writable_from = 0, .revoked = false, .expires_at = {}};
  }
  fence.writable_from = writable_from;
  fence.expires_at = std::max(fence.expires_at, FromProtoTimestamp(lease.expires_at()));
  if (fences_.size() >= prune_at_) {
    absl::erase_if(fences_, [now](const auto& entry) { return entry.second.expires_at < now; });
    prune_at_ = std::max<size_t>(1024, 2 * fences_.size());
  }
  return absl::OkStatus();
}

absl::Status HostedModel::CheckIncarnation(const v1::BlockLease& lease) const {
  const int num_shards = spec().num_shards();
  if (lease.shard_incarnations_size() != num_shards) {
    return absl::InvalidArgumentError(absl::StrCat("lease.shard_incarnations: expected ",
                                                   num_shards, " entries (one per slot), got ",
                                                   lease.shard_incarnations_size()));
  }
  const uint64_t leased = lease.shard_incarnations(range_.slot());
  if (leased == range_.incarnation()) return absl::OkStatus();
  return ReprefillRequiredError(absl::StrCat(
      "lease: issued for incarnation ", leased, " of slot ", range_.slot(),
      ", this shard is incarnation ", range_.incarnation(),
      leased < range_.incarnation() ? ": its K/V was lost" : ": its K/V is not on this shard",
      "; open a new session and re-prefill"));
}

absl::Status HostedModel::CheckBlocks(const v1::BlockLease& lease) const {
  if (lease.blocks_size() != lease.generations_size()) {
    return absl::InvalidArgumentError(absl::StrCat("lease.generations: expected one per block (",
                                                   lease.blocks_size(), "), got ",
                                                   lease.generations_size()));
  }
  for (int i = 0; i < lease.blocks_size(); ++i) {
    if (absl::Status status = CheckBlockId(absl::StrCat("lease.blocks[", i, "]"), lease.blocks(i));
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace kvtier
