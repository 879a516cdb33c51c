// ModelTable: the registered models and, per model, what the coordinator owns of it: the
// global block id space (allocator plus a generation per block, signed into leases) and the
// head-range slots with the shard that holds each.
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
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/blocks/block_allocator.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

struct HeadSlot {
  uint64_t shard_id = 0;  // 0: vacant
  uint64_t incarnation = 0;
  bool ready = false;
};

struct ModelState {
  explicit ModelState(const v1::ModelSpec& model);

  // True when every slot's shard serves its range.
  bool Ready() const;
  int LiveSlots() const;
  // True when shard `shard_id` holds one of the slots (a shard holds at most one per model).
  bool HostedBy(uint64_t shard_id) const;
  // The slots' incarnations, in slot order: what a session's K/V lives on.
  std::vector<uint64_t> Placement() const;

  // Allocates `count` blocks (all or nothing), bumping each one's generation.
  absl::Status AllocateBlocks(int32_t count, std::vector<BlockId>* blocks);
  void ReleaseBlocks(const std::vector<BlockId>& blocks);

  const v1::ModelSpec spec;
  BlockAllocator allocator;
  std::vector<uint64_t> generations;  // per block
  std::vector<HeadSlot> slots;
  int64_t sessions_lost = 0;
};

class ModelTable {
 public:
  // Adds `model`, validated; registering an identical spec again is a no-op, a different one
  // under the same name is ALREADY_EXISTS.
  absl::StatusOr<ModelState*> Register(const v1::ModelSpec& model);

  // NOT_FOUND naming the model.
  absl::StatusOr<ModelState*> Find(const std::string& name);

  // In registration order.
  std::vector<ModelState*> All();

 private:
  std::map<std::string, std::unique_ptr<ModelState>> models_;
  std::vector<ModelState*> order_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_MODEL_TABLE_H_
