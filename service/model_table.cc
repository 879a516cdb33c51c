#include "service/model_table.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/quoted_prefix.h"

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

NamespaceId ModelState::NamespaceOf(const std::string& tenant) const {
  return absl::HashOf(tenant, spec.id().name(), spec.id().version());
}

NamespaceId ModelState::NamespaceFor(const std::string& tenant) {
  const NamespaceId ns = NamespaceOf(tenant);
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

namespace {

// FAILED_PRECONDITION naming the first geometry field of `model` that differs from `registered`
// (another version of its name).
absl::Status CheckSameGeometry(const v1::ModelSpec& model, const v1::ModelSpec& registered) {
  const struct {
    const char* field;
    int64_t got;
    int64_t want;
  } fields[] = {{"num_layers", model.num_layers(), registered.num_layers()},
                {"num_kv_heads", model.num_kv_heads(), registered.num_kv_heads()},
                {"num_q_heads", model.num_q_heads(), registered.num_q_heads()},
                {"head_dim", model.head_dim(), registered.head_dim()},
                {"dtype", model.dtype(), registered.dtype()},
                {"block_size", model.block_size(), registered.block_size()}};
  for (const auto& field : fields) {
    if (field.got == field.want) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "model.", field.field, ": version ", ModelIdString(registered.id()), " has ", field.want,
        ", this version ", field.got, "; a new version must keep the attention geometry "
        "(register a different geometry under another name)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelState*> ModelTable::Register(const v1::ModelSpec& model,
                                                 absl::string_view eviction_policy,
                                                 int64_t max_metadata_bytes) {
  if (absl::Status status = ValidateModelSpec(model); !status.ok()) return status;
  if (const int64_t bytes = BlockManager::MetadataBytes(model.num_blocks(), model.block_size());
      bytes > max_metadata_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model.num_blocks: ", model.num_blocks(), " blocks x ", model.block_size(),
        " tokens take about ", bytes, " bytes of coordinator metadata, over its limit of ",
        max_metadata_bytes, " (max_model_metadata_bytes)"));
  }
  const std::string key = ModelIdString(model.id());
  if (auto it = models_.find(key); it != models_.end()) {
    if (google::protobuf::util::MessageDifferencer::Equals(it->second->spec, model)) {
      return it->second.get();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("model: ", key, " is registered with a different spec"));
  }
  for (ModelState* other : order_) {
    if (other->spec.id().name() != model.id().name()) continue;
    if (absl::Status status = CheckSameGeometry(model, other->spec); !status.ok()) return status;
  }
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy =
      NewEvictionPolicy(eviction_policy, model.num_blocks());
  if (!policy.ok()) return policy.status();
  auto state = std::make_unique<ModelState>(model, *std::move(policy));
  ModelState* raw = state.get();
  raw->serial = next_serial_++;
  models_.emplace(key, std::move(state));
  order_.push_back(raw);
  return raw;
}

absl::StatusOr<ModelState*> ModelTable::Find(absl::string_view field, const v1::ModelId& model) {
  if (absl::Status status = ValidateModelId(field, model); !status.ok()) return status;
  auto it = models_.find(ModelIdString(model));
  if (it != models_.end()) return it->second.get();
  std::vector<std::string> versions;
  for (const ModelState* other : order_) {
    if (other->spec.id().name() == model.name()) {
      versions.push_back(absl::StrCat("\"", other->spec.id().version(), "\""));
    }
  }
  if (versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat(field, ".name: no model named ", QuotedPrefix(model.name())));
  }
  return absl::NotFoundError(absl::StrCat(field, ".version: model ", model.name(),
                                          " has no version ", QuotedPrefix(model.version()),
                                          " (registered: ", absl::StrJoin(versions, ", "), ")"));
}

std::vector<ModelState*> ModelTable::OtherVersions(const ModelState& model) {
  std::vector<ModelState*> others;
  for (ModelState* other : order_) {
    if (other != &model && other->spec.id().name() == model.spec.id().name()) {
      others.push_back(other);
    }
  }
  return others;
}

void ModelTable::Remove(ModelState* model) {
  order_.erase(std::find(order_.begin(), order_.end(), model));
  models_.erase(ModelIdString(model->spec.id()));
}

ModelState* ModelTable::FindSerial(uint64_t serial) {
  for (ModelState* model : order_) {
    if (model->serial == serial) return model;
  }
  return nullptr;
}

std::vector<ModelState*> ModelTable::All() { return order_; }

}  // namespace kvtier
