#include "service/model_table.h"

#include <memory>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire/model_spec.h"

namespace kvtier {

ModelState::ModelState(const v1::ModelSpec& model, std::unique_ptr<EvictionPolicy> policy)
    : spec(model),
      blocks(model.num_blocks(), model.block_size(), std::move(policy)),
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

void ModelState::ReleaseBlocks(const std::vector<BlockId>& released) {
  // NOTE: the blocks come from this model's own reservations, so Release cannot fail.
  for (BlockId block : released) blocks.Release(block).IgnoreError();
}

NamespaceId ModelState::NamespaceFor(const std::string& tenant) {
  const NamespaceId ns = absl::HashOf(tenant, spec.id().name(), spec.id().version());
  tenant_of.emplace(ns, tenant);
  return ns;
}

ModelState::Counters ModelState::CountersFor(const std::string& tenant) {
  return Counters{.model = &cache, .tenant = &tenant_cache[tenant]};
}

void ModelState::CountEvicted(const std::vector<NamespaceId>& namespaces) {
  for (NamespaceId ns : namespaces) {
    cache.set_blocks_evicted(cache.blocks_evicted() + 1);
    auto it = tenant_of.find(ns);
    if (it == tenant_of.end()) continue;
    v1::CacheCounters& tenant = tenant_cache[it->second];
    tenant.set_blocks_evicted(tenant.blocks_evicted() + 1);
  }
}

absl::StatusOr<ModelState*> ModelTable::Register(const v1::ModelSpec& model,
                                                 absl::string_view eviction_policy) {
  if (absl::Status status = ValidateModelSpec(model); !status.ok()) return status;
  const std::string& name = model.id().name();
  auto it = models_.find(name);
  if (it != models_.end()) {
    if (google::protobuf::util::MessageDifferencer::Equals(it->second->spec, model)) {
      return it->second.get();
    }
    return absl::AlreadyExistsError(absl::StrCat("model.id.name: a different model named \"", name,
                                                 "\" is registered (",
                                                 ModelIdString(it->second->spec.id()), ")"));
  }
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy =
      NewEvictionPolicy(eviction_policy, model.num_blocks());
  if (!policy.ok()) return policy.status();
  auto state = std::make_unique<ModelState>(model, *std::move(policy));
  ModelState* raw = state.get();
  models_.emplace(name, std::move(state));
  order_.push_back(raw);
  return raw;
}

absl::StatusOr<ModelState*> ModelTable::Find(absl::string_view field, const v1::ModelId& model) {
  if (absl::Status status = ValidateModelId(field, model); !status.ok()) return status;
  auto it = models_.find(model.name());
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat(field, ".name: no model named \"", model.name(), "\""));
  }
  const std::string& registered = it->second->spec.id().version();
  if (registered != model.version()) {
    return absl::NotFoundError(absl::StrCat(field, ".version: model ", model.name(),
                                            " is registered as version \"", registered,
                                            "\", not \"", model.version(), "\""));
  }
  return it->second.get();
}

std::vector<ModelState*> ModelTable::All() { return order_; }

}  // namespace kvtier
