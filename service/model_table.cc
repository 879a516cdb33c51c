#include "service/model_table.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire/model_spec.h"

namespace kvtier {

ModelState::ModelState(const v1::ModelSpec& model)
    : spec(model),
      allocator(model.num_blocks()),
      generations(model.num_blocks(), 0),
      slots(model.num_shards()) {}

bool ModelState::Ready() const {
  for (const HeadSlot& slot : slots) {
    if (!slot.ready) return false;
  }
  return true;
}

int ModelState::LiveSlots() const {
  int live = 0;
  for (const HeadSlot& slot : slots) live += slot.shard_id != 0 ? 1 : 0;
  return live;
}

bool ModelState::HostedBy(uint64_t shard_id) const {
  for (const HeadSlot& slot : slots) {
    if (slot.shard_id == shard_id) return true;
  }
  return false;
}

std::vector<uint64_t> ModelState::Placement() const {
  std::vector<uint64_t> placement;
  placement.reserve(slots.size());
  for (const HeadSlot& slot : slots) placement.push_back(slot.incarnation);
  return placement;
}

absl::Status ModelState::AllocateBlocks(int32_t count, std::vector<BlockId>* blocks) {
  const size_t first = blocks->size();
  if (absl::Status status = allocator.AllocateMany(count, blocks); !status.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat("model ", spec.name(), ": ", count,
                                                     " more blocks needed, ", allocator.num_free(),
                                                     " of ", allocator.num_blocks(), " free"));
  }
  for (size_t i = first; i < blocks->size(); ++i) ++generations[(*blocks)[i]];
  return absl::OkStatus();
}

void ModelState::ReleaseBlocks(const std::vector<BlockId>& blocks) {
  // NOTE: the blocks come from this model's own allocations, so Release cannot fail.
  for (BlockId block : blocks) allocator.Release(block).IgnoreError();
}

absl::StatusOr<ModelState*> ModelTable::Register(const v1::ModelSpec& model) {
  if (absl::Status status = ValidateModelSpec(model); !status.ok()) return status;
  auto it = models_.find(model.name());
  if (it != models_.end()) {
    if (google::protobuf::util::MessageDifferencer::Equals(it->second->spec, model)) {
      return it->second.get();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("model.name: a different model named \"", model.name(), "\" is registered"));
  }
  auto state = std::make_unique<ModelState>(model);
  ModelState* raw = state.get();
  models_.emplace(model.name(), std::move(state));
  order_.push_back(raw);
  return raw;
}

absl::StatusOr<ModelState*> ModelTable::Find(const std::string& name) {
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model: no model named \"", name, "\""));
  }
  return it->second.get();
}

std::vector<ModelState*> ModelTable::All() { return order_; }

}  // namespace kvtier
