// HostedModel: one model's head range as this shard holds it: the coordinator's
// v1::HostedRange (spec, slot, heads, incarnation), the KvPool with the range's K/V, and, per
// block, the highest lease generation this shard has seen for it.
//
// Leases (v1::BlockLease) are the only way a step reaches the pool. AdmitLease checks one
// against the lease key (its HMAC once per lease: verified signatures are cached until the
// lease expires, verified_leases.h), this range's model and incarnation, the clock and the
// block ids, and refuses
//   - a lease whose generation of a block is lower than one already seen (the block was freed
//     and handed to another session), raising the known generations to the lease's otherwise;
//   - a lease whose writer epoch is lower than one already seen for its session (another
//     client took the session over), raising the session's known epoch otherwise;
//   - a write below the lease's writable position, or below the highest writable position
//     seen for the session's current writer (an older lease of the same writer, whose
//     committed blocks may be shared by now).
// CheckLeaseCurrent repeats the generation and epoch checks before every layer, so a stream
// that began with a lease that has since gone stale stops writing once the newer holder has
// shown up here.
//
// Revoke (the coordinator's invalidation) raises blocks' generations the same way and marks
// them revoked, and fences sessions as revoked: every lease of a revoked session, or naming a
// revoked block at a lower generation, is refused from then on, before its next layer, with
// reason INVALIDATED. CopyBlocks copies blocks' first token slots (a
// fork's private copy of its source's partial tail block).
//
// Thread-safe: the range and the pool's geometry are immutable; generations and revoked
// generations are atomics (raised with compare-and-swap, never lowered); `fence_mu_` guards the
// per-session writer fences; the verified leases lock their own; the pool is safe for concurrent
// steps on disjoint slots (kv_pool.h), which the coordinator's block ownership and the writable
// positions guarantee.
#ifndef KVTIER_SHARD_HOSTED_MODEL_H_
#define KVTIER_SHARD_HOSTED_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache/kv/kv_pool.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/registry.pb.h"
#include "kvtier/v1/shard_control.pb.h"
#include "shard/pool_device.h"
#include "shard/verified_leases.h"

namespace kvtier {

class HostedModel {
 public:
  // Checks the range (a valid spec, a slot in range, heads within the model's) and
  // allocates its pool with `create_pool`: INVALID_ARGUMENT naming the field;
  // RESOURCE_EXHAUSTED when the pool would take more than `max_pool_bytes` or cannot be
  // allocated.
  static absl::StatusOr<std::unique_ptr<HostedModel>> Create(const v1::HostedRange& range,
                                                             int64_t max_pool_bytes,
                                                             const PoolFactory& create_pool);

  HostedModel(const HostedModel&) = delete;
  HostedModel& operator=(const HostedModel&) = delete;

  const v1::HostedRange& range() const { return range_; }
  const v1::ModelSpec& spec() const { return range_.model(); }
  KvPool& pool() { return *pool_; }
  const KvPool& pool() const { return *pool_; }

  // True when `range` describes exactly what this model holds (spec, slot, heads and
  // incarnation), so its K/V stays valid under it.
  bool Holds(const v1::HostedRange& range) const;

  // Admits `lease` for a step at `now` that writes positions from `first_write` on:
  // PERMISSION_DENIED for a bad signature, another model, an expired lease, a stale block
  // generation or writer epoch, or a write below the writable position; FAILED_PRECONDITION
  // with reason REPREFILL_REQUIRED for another incarnation of this slot (the K/V is lost);
  // INVALID_ARGUMENT for malformed block lists. Messages name the lease field
  // ("lease.blocks[3]: ...").
  absl::Status AdmitLease(const v1::BlockLease& lease, int32_t first_write,
                          absl::string_view lease_key, absl::Time now)
      ABSL_LOCKS_EXCLUDED(fence_mu_);

  // PERMISSION_DENIED when a block of `lease`, which AdmitLease admitted, has since been seen
  // with a higher generation, or its session with a higher writer epoch; FAILED_PRECONDITION
  // with reason INVALIDATED when such a block was revoked.
  absl::Status CheckLeaseCurrent(const v1::BlockLease& lease) const ABSL_LOCKS_EXCLUDED(fence_mu_);

  // Revokes the request's sessions, and its blocks each at its generation: a lease of one of
  // those sessions, or naming one of the blocks at a lower generation, is refused from now on.
  // INVALID_ARGUMENT naming the field, revoking nothing, for a block out of range or a
  // generation list of another length.
  absl::Status Revoke(const v1::RevokeRequest& request) ABSL_LOCKS_EXCLUDED(fence_mu_);

  // Copies the first copy.num_tokens() slots of each source block to its target, every layer.
  // INVALID_ARGUMENT naming the field for blocks out of range, a source that is its target, or
  // a token count outside 1..block_size (checked before anything is copied);
  // FAILED_PRECONDITION with reason INVALIDATED for a source revoked past its stated
  // generation.
  absl::Status CopyBlocks(const google::protobuf::RepeatedPtrField<v1::BlockCopy>& copies);

 private:
  HostedModel(const v1::HostedRange& range, std::unique_ptr<KvPool> pool);

  // The highest writer epoch seen for a session, and the highest writable position seen for
  // that epoch, or that the session was revoked; forgotten once every lease that raised them
  // has expired.
  struct WriterFence {
    uint64_t epoch = 0;
    int32_t writable_from = 0;
    bool revoked = false;
    absl::Time expires_at;
  };

  // INVALIDATED for a revoked session, PERMISSION_DENIED for a lease older than the fence.
  static absl::Status FenceRefuses(const WriterFence& fence, const v1::BlockLease& lease);
  absl::Status CheckIncarnation(const v1::BlockLease& lease) const;
  absl::Status CheckBlocks(const v1::BlockLease& lease) const;
  // Checks `lease` against its session's fence and raises the fence to it.
  absl::Status AdmitWriter(const v1::BlockLease& lease, int32_t first_write, absl::Time now)
      ABSL_LOCKS_EXCLUDED(fence_mu_);
  // A stale generation `leased` of `block` (named by `field`): INVALIDATED when the block was
  // revoked past it, PERMISSION_DENIED (reassigned) otherwise.
  absl::Status StaleBlockError(absl::string_view field, int32_t block, uint64_t known,
                               uint64_t leased) const;
  absl::Status CheckBlockId(absl::string_view field, int32_t block) const;

  const v1::HostedRange range_;
  const std::unique_ptr<KvPool> pool_;
  std::vector<std::atomic<uint64_t>> generations_;  // per block id, the highest seen
  std::vector<std::atomic<uint64_t>> revoked_;      // per block id, the highest revoked
  VerifiedLeases verified_;
  mutable absl::Mutex fence_mu_;
  absl::flat_hash_map<std::string, WriterFence> fences_ ABSL_GUARDED_BY(fence_mu_);
  size_t prune_at_ ABSL_GUARDED_BY(fence_mu_) = 1024;  // fences_ size that triggers a prune
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_HOSTED_MODEL_H_
