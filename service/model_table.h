// ModelTable: the registered model versions (a name may have several, all of one attention
// geometry) and, per version, what the coordinator owns of it: the global block id space (a BlockManager: free, referenced and
// cached blocks, their generations signed into leases, the prefix index and eviction), the
// head-range slots with the shard that holds each, and the model's cache counters, in all and
// per tenant.
//
// A slot is vacant (shard_id 0), assigned, or ready (its shard reported the pool allocated).
// Every assignment gets a fresh incarnation, unique across the coordinator's life, so a
// session can tell that a slot's K/V is not the one it wrote.
//
// Thread-compatible: the Coordinator's lock guards it.
#ifndef KVTIER_SERVICE_MODEL_TABLE_H_
#define KVTIER_SERVICE_MODEL_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/blocks/block_manager.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/admin.pb.h"

namespace kvtier {

struct HeadSlot {
  uint64_t shard_id = 0;  // 0: vacant
  uint64_t incarnation = 0;
  bool ready = false;
};

struct ModelState {
  ModelState(const v1::ModelSpec& model, std::unique_ptr<EvictionPolicy> policy);

  // True when every slot's shard serves its range.
  bool Ready() const;
  int LiveSlots() const;
  // True when shard `shard_id` holds one of the slots (a shard holds at most one per model).
  bool HostedBy(uint64_t shard_id) const;
  // The slots' incarnations, in slot order: what a session's K/V lives on.
  std::vector<uint64_t> Placement() const;

  void ReleaseBlocks(const std::vector<BlockId>& blocks);

  // The namespace of `tenant`'s sessions of this model: where their full blocks are cached
  // and matched. Remembers the tenant, to attribute counters to it.
  NamespaceId NamespaceFor(const std::string& tenant);
  // The same namespace, remembering nothing (for lookups that must not grow the table).
  NamespaceId NamespaceOf(const std::string& tenant) const;
  // The counters of the model and of `tenant`, to be bumped together.
  struct Counters {
    v1::CacheCounters* model;
    v1::CacheCounters* tenant;
  };
  Counters CountersFor(const std::string& tenant);
  // Counts blocks evicted from `namespaces` (as BlockManager::Reserve reports them).
  void CountEvicted(const std::vector<NamespaceId>& namespaces);

  const v1::ModelSpec spec;
  // Unique over the coordinator's life: tells this version from a later one at the same
  // address once this one is removed.
  uint64_t serial = 0;
  // Retired by draining: no new sessions, turns or matches; removed once no session is live.
  bool draining = false;
  BlockManager blocks;
  std::vector<HeadSlot> slots;
  int64_t live_sessions = 0;  // active and retained
  int64_t sessions_lost = 0;
  v1::CacheCounters cache;
  absl::btree_map<std::string, v1::CacheCounters> tenant_cache;
  absl::flat_hash_map<NamespaceId, std::string> tenant_of;
};

class ModelTable {
 public:
  // Adds the version `model`, validated, its cached blocks evicted by the policy named
  // `eviction_policy`. Registering an identical spec again is a no-op; a different one under
  // the same name and version is ALREADY_EXISTS; a new version whose geometry (layers, heads,
  // head_dim, dtype, block_size) differs from its name's registered versions is
  // FAILED_PRECONDITION naming the field. A spec whose block metadata would take more than
  // `max_metadata_bytes` (BlockManager::MetadataBytes) is RESOURCE_EXHAUSTED naming
  // model.num_blocks, refused before anything is allocated.
  absl::StatusOr<ModelState*> Register(const v1::ModelSpec& model,
                                       absl::string_view eviction_policy,
                                       int64_t max_metadata_bytes);

  // The version `model` names (both name and version): INVALID_ARGUMENT for a malformed id,
  // NOT_FOUND for one not registered, each naming `field`.
  absl::StatusOr<ModelState*> Find(absl::string_view field, const v1::ModelId& model);

  // The other registered versions of `model`'s name.
  std::vector<ModelState*> OtherVersions(const ModelState& model);

  // Forgets `model` (no session may point to it any more).
  void Remove(ModelState* model);

  // The registered version whose serial is `serial`, or nullptr.
  ModelState* FindSerial(uint64_t serial);

  // In registration order.
  std::vector<ModelState*> All();

 private:
  std::map<std::string, std::unique_ptr<ModelState>> models_;  // by ModelIdString
  std::vector<ModelState*> order_;
  uint64_t next_serial_ = 1;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_MODEL_TABLE_H_
