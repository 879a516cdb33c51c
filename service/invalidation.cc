#include "service/invalidation.h"

#include <utility>

#include "proto/wire/time_convert.h"

namespace kvtier {
namespace {

void CountSession(ModelState& model, const std::string& tenant) {
  const ModelState::Counters counters = model.CountersFor(tenant);
  for (v1::CacheCounters* c : {counters.model, counters.tenant}) {
    c->set_sessions_invalidated(c->sessions_invalidated() + 1);
  }
}

}  // namespace

Invalidation::Invalidation(SessionTable* sessions, std::string why, absl::Time tombstone_until,
                           absl::Time leases_expire)
    : sessions_(sessions),
      why_(std::move(why)),
      tombstone_until_(tombstone_until),
      leases_expire_(leases_expire) {}

Invalidation::ModelPart& Invalidation::PartOf(ModelState* model) {
  for (ModelPart& part : parts_) {
    if (part.model == model) return part;
  }
  parts_.push_back(
      ModelPart{.model = model, .cached = {}, .all_blocks = false, .released = {}, .request = {}});
  *parts_.back().request.mutable_model() = model->spec.id();
  return parts_.back();
}

void Invalidation::AddSession(SessionRecord* session) {
  if (session->state == SessionRecord::State::kLost || !seen_.insert(session).second) return;
  PartOf(session->model);
  invalidated_.push_back(session);
}

void Invalidation::AddCachedBlocks(ModelState* model, absl::Span<const BlockId> blocks) {
  std::vector<BlockId>& cached = PartOf(model).cached;
  cached.insert(cached.end(), blocks.begin(), blocks.end());
}

void Invalidation::AddModel(ModelState* model) {
  PartOf(model).all_blocks = true;
  for (SessionRecord* session :
       sessions_->Live([model](const SessionRecord& s) { return s.model == model; })) {
    AddSession(session);
  }
}

std::vector<Invalidation::ModelRevocation> Invalidation::Apply(v1::InvalidationResult* result) {
  // Every live session holding a block to revoke goes too.
  for (ModelPart& part : parts_) {
    part.cached = part.model->blocks.CachedSubtrees(part.cached);
    if (part.cached.empty()) continue;
    std::vector<bool> revoked(part.model->blocks.num_blocks());
    for (BlockId block : part.cached) revoked[block] = true;
    const ModelState* model = part.model;
    for (SessionRecord* session : sessions_->Live([&](const SessionRecord& s) {
           if (s.model != model) return false;
           for (BlockId block : s.blocks) {
             if (revoked[block]) return true;
           }
           return false;
         })) {
      AddSession(session);
    }
  }
  for (SessionRecord* session : invalidated_) {
    ModelPart& part = PartOf(session->model);
    part.released.insert(part.released.end(), session->blocks.begin(), session->blocks.end());
    v1::RevokedSession* revoked = part.request.add_sessions();
    revoked->set_session_id(session->id);
    *revoked->mutable_expires_at() = ToProtoTimestamp(leases_expire_);
    CountSession(*session->model, session->tenant);
    sessions_->MarkLost(session, why_, tombstone_until_, v1::ERROR_REASON_INVALIDATED);
  }
  result->set_sessions(result->sessions() + static_cast<int64_t>(invalidated_.size()));

  std::vector<ModelRevocation> revocations;
  for (ModelPart& part : parts_) {
    BlockManager& blocks = part.model->blocks;
    std::vector<BlockId> to_revoke;
    if (part.all_blocks) {
      for (BlockId block = 0; block < blocks.num_blocks(); ++block) to_revoke.push_back(block);
    } else {
      to_revoke = std::move(part.cached);
      to_revoke.insert(to_revoke.end(), part.released.begin(), part.released.end());
    }
    // Blocks still held (shared with sessions that stay) stay theirs.
    std::erase_if(to_revoke, [&](BlockId block) { return blocks.refcount(block) > 0; });
    std::vector<BlockId> revoked;
    std::vector<uint64_t> generations;
    // NOTE: Revoke fails only for a referenced block, and none is left.
    const int32_t cached = blocks.Revoke(to_revoke, &revoked, &generations).value_or(0);
    part.request.mutable_blocks()->Add(revoked.begin(), revoked.end());
    part.request.mutable_generations()->Add(generations.begin(), generations.end());
    v1::CacheCounters& counters = part.model->cache;
    counters.set_blocks_invalidated(counters.blocks_invalidated() +
                                    static_cast<int64_t>(revoked.size()));
    result->set_blocks(result->blocks() + static_cast<int64_t>(revoked.size()));
    result->set_cached_blocks(result->cached_blocks() + cached);
    revocations.push_back(ModelRevocation{part.model, std::move(part.request)});
  }
  return revocations;
}

}  // namespace kvtier
