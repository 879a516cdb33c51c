// Invalidation: one invalidation's change to the coordinator's metadata, gathered and then
// applied under the coordinator's lock. What is invalidated:
//   - sessions (AddSession): each becomes a tombstone whose calls fail with reason
//     INVALIDATED; the blocks it held that no live session holds any more are revoked;
//   - cached blocks (AddCachedBlocks), with every cached block under them: each is revoked,
//     and every live session holding one is invalidated as above;
//   - a whole model version (AddModel): all its sessions and all its blocks.
// Revoking a block uncaches it (it stops matching at once), frees it and raises its
// generation (BlockManager::Revoke). Apply returns, per model, what its shards must refuse
// from then on (the revoked sessions and blocks, a v1::RevokeRequest without the incarnation),
// which the coordinator sends before it answers the invalidation.
//
// Thread-compatible: used under the coordinator's lock, within one call.
#ifndef KVTIER_SERVICE_INVALIDATION_H_
#define KVTIER_SERVICE_INVALIDATION_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvtier/v1/session.pb.h"
#include "kvtier/v1/shard_control.pb.h"
#include "service/model_table.h"
#include "service/session_table.h"

namespace kvtier {

class Invalidation {
 public:
  // Invalidated sessions' calls will say `why`; their tombstones last until
  // `tombstone_until`, and the shards may forget a revoked session after `leases_expire`.
  Invalidation(SessionTable* sessions, std::string why, absl::Time tombstone_until,
               absl::Time leases_expire);

  void AddSession(SessionRecord* session);
  void AddCachedBlocks(ModelState* model, absl::Span<const BlockId> blocks);
  void AddModel(ModelState* model);

  struct ModelRevocation {
    ModelState* model;
    v1::RevokeRequest request;  // all but the incarnation, which is per slot
  };
  // Applies it all, counting in `result` (sessions, blocks, cached_blocks) and in the models'
  // and tenants' counters. Call once.
  std::vector<ModelRevocation> Apply(v1::InvalidationResult* result);

 private:
  struct ModelPart {
    ModelState* model;
    std::vector<BlockId> cached;  // roots to revoke with what lies under them
    bool all_blocks = false;
    std::vector<BlockId> released;  // blocks of invalidated sessions
    v1::RevokeRequest request;
  };
  ModelPart& PartOf(ModelState* model);

  SessionTable* const sessions_;
  const std::string why_;
  const absl::Time tombstone_until_;
  const absl::Time leases_expire_;
  std::vector<ModelPart> parts_;
  std::vector<SessionRecord*> invalidated_;
  absl::flat_hash_set<const SessionRecord*> seen_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_INVALIDATION_H_
