// ShardState: what the coordinator's current assignment (v1::ShardAssignment) makes this shard
// hold: the lease key and, by model name, the HostedModels with their pools.
//
// Apply replaces the hosted models with the assignment's ranges: a model whose range is
// unchanged (spec, slot, heads, incarnation) keeps its pool and K/V; a changed one gets a
// fresh pool (logged, proto/wire/log.h); one no longer listed is dropped. Pools are allocated
// outside the lock, so steps on unchanged models carry on meanwhile, and within
// `capacity_bytes` in all. Lookups hand out shared pointers: a step in flight keeps its
// model's pool alive after an Apply or a Reset dropped it.
//
// Thread-safe. mu_ guards the published key and models; update_mu_ serializes Apply and
// Reset (acquired before mu_, never the other way round).
#ifndef KVTIER_SHARD_SHARD_STATE_H_
#define KVTIER_SHARD_SHARD_STATE_H_

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
#include "kvtier/v1/registry.pb.h"
#include "shard/hosted_model.h"
#include "shard/pool_device.h"

namespace kvtier {

class ShardState {
 public:
  // A hosted model with the lease key its leases are checked against, read together.
  struct Hosted {
    std::shared_ptr<HostedModel> model;
    std::string lease_key;
  };

  // Pools, made by `create_pool`, may use at most `capacity_bytes` in all.
  ShardState(int64_t capacity_bytes, PoolFactory create_pool);

  ShardState(const ShardState&) = delete;
  ShardState& operator=(const ShardState&) = delete;

  // Makes `assignment` current. A range that cannot be hosted (invalid, a duplicate model,
  // beyond capacity, allocation failure) is left out and its error returned, prefixed with
  // "assignment.ranges[i] (model \"name\"): "; the others are hosted all the same. An
  // assignment without a lease key is refused whole (INVALID_ARGUMENT) and changes nothing.
  absl::Status Apply(const v1::ShardAssignment& assignment) ABSL_LOCKS_EXCLUDED(update_mu_, mu_);

  // Drops the lease key and every model (a new registration starts empty).
  void Reset() ABSL_LOCKS_EXCLUDED(update_mu_, mu_);

  // The incarnations of the hosted ranges: their pools are allocated and serving (reported
  // in heartbeats, so the coordinator opens sessions only on ready ranges).
  std::vector<uint64_t> ReadyIncarnations() const ABSL_LOCKS_EXCLUDED(mu_);

  // The hosted range of `model` (name and version); NOT_FOUND naming `field` ("plan.model")
  // when none is hosted.
  absl::StatusOr<Hosted> Find(absl::string_view field, const v1::ModelId& model) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Models = absl::flat_hash_map<std::string, std::shared_ptr<HostedModel>>;

  // The kept models of `current` that `assignment` lists unchanged.
  static Models Unchanged(const Models& current, const v1::ShardAssignment& assignment);

  const int64_t capacity_bytes_;
  const PoolFactory create_pool_;

  absl::Mutex update_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::string lease_key_ ABSL_GUARDED_BY(mu_);
  Models models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_SHARD_STATE_H_
