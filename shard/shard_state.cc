#include "shard/shard_state.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {

ShardState::ShardState(int64_t capacity_bytes, PoolFactory create_pool)
    : capacity_bytes_(capacity_bytes), create_pool_(std::move(create_pool)) {}

ShardState::Models ShardState::Unchanged(const Models& current,
                                         const v1::ShardAssignment& assignment) {
  Models kept;
  for (const v1::HostedRange& range : assignment.ranges()) {
    auto it = current.find(range.model().id().name());
    if (it != current.end() && it->second->Holds(range)) kept.insert(*it);
  }
  return kept;
}

absl::Status ShardState::Apply(const v1::ShardAssignment& assignment) {
  if (assignment.lease_key().empty()) {
    return absl::InvalidArgumentError("assignment.lease_key: empty");
  }
  absl::MutexLock update(&update_mu_);
  Models next;
  {
    // Drop what changed first, so its memory can go before the replacements are allocated.
    absl::MutexLock lock(&mu_);
    next = Unchanged(models_, assignment);
    models_ = next;
    lease_key_ = assignment.lease_key();
  }
  int64_t available = capacity_bytes_;
  for (const auto& [name, model] : next) available -= model->pool().shape().total_bytes();

  absl::Status status;
  absl::flat_hash_set<std::string> listed;
  for (int i = 0; i < assignment.ranges_size(); ++i) {
    const v1::HostedRange& range = assignment.ranges(i);
    const std::string& name = range.model().id().name();
    const std::string field = absl::StrCat("assignment.ranges[", i, "] (model \"", name, "\")");
    if (!listed.insert(name).second) {
      status.Update(absl::InvalidArgumentError(absl::StrCat(field, ": listed twice")));
      continue;
    }
    if (next.contains(name)) continue;
    absl::StatusOr<std::unique_ptr<HostedModel>> created =
        HostedModel::Create(range, available, create_pool_);
    if (!created.ok()) {
      status.Update(Prefixed(absl::StrCat(field, ": "), created.status()));
      continue;
    }
    available -= (*created)->pool().shape().total_bytes();
    Log(absl::StrCat("hosting model ", name, " slot ", range.slot(), " (",
                     HeadRangeString(range.heads()), "), incarnation ", range.incarnation(),
                     ", pool ", (*created)->pool().shape().total_bytes(), " bytes"));
    next.emplace(name, *std::move(created));
  }

  absl::MutexLock lock(&mu_);
  models_ = std::move(next);
  return status;
}

void ShardState::Reset() {
  absl::MutexLock update(&update_mu_);
  absl::MutexLock lock(&mu_);
  lease_key_.clear();
  models_.clear();
}

absl::StatusOr<ShardState::Hosted> ShardState::Find(absl::string_view field,
                                                    const v1::ModelId& model) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(model.name());
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat(field, ".name: this shard holds no range of model ",
                                            QuotedPrefix(model.name())));
  }
  const std::string& version = it->second->spec().id().version();
  if (version != model.version()) {
    return absl::NotFoundError(absl::StrCat(field, ".version: this shard holds version \"", version,
                                            "\" of model ", QuotedPrefix(model.name()), ", not ",
                                            QuotedPrefix(model.version())));
  }
  return Hosted{it->second, lease_key_};
}

std::vector<uint64_t> ShardState::ReadyIncarnations() const {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> incarnations;
  incarnations.reserve(models_.size());
  for (const auto& [name, model] : models_) incarnations.push_back(model->range().incarnation());
  return incarnations;
}

}  // namespace kvtier
