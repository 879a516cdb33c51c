// The Coordinator's invalidations and version retirement (coordinator.h): each applies its
// metadata change under the lock (Invalidation), then revokes on the shards (Send) and answers
// once every shard has acknowledged or been dropped.
#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "service/coordinator.h"
#include "service/head_placement.h"
#include "service/request_checks.h"

namespace kvtier {

void Coordinator::InvalidateSession(const v1::InvalidateSessionRequest& request,
                                    Callback<v1::InvalidationResult> done) {
  Send(
      [&]() -> absl::StatusOr<Revocation> {
        absl::MutexLock lock(&mu_);
        absl::StatusOr<SessionRecord*> session =
            FindSession(request.session_id(), request.tenant());
        if (!session.ok()) return session.status();
        Invalidation invalidation = NewInvalidation("it was invalidated by its tenant");
        invalidation.AddSession(*session);
        return Finish(invalidation, &v1::TierCounters::session_invalidations,
                      &v1::TierCounters::set_session_invalidations);
      }(),
      std::move(done));
}

void Coordinator::InvalidatePrefix(const v1::InvalidatePrefixRequest& request,
                                   Callback<v1::InvalidationResult> done) {
  Send(
      [&]() -> absl::StatusOr<Revocation> {
        if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
        if (request.tokens().empty()) {
          return absl::InvalidArgumentError("tokens: expected at least one token id");
        }
        if (absl::Status status = CheckTokenIds("tokens", request.tokens()); !status.ok()) {
          return status;
        }
        absl::MutexLock lock(&mu_);
        absl::StatusOr<ModelState*> model = models_.Find("model", request.model());
        if (!model.ok()) return model.status();
        const absl::Span<const int32_t> prefix = request.tokens();
        const NamespaceId ns = (*model)->NamespaceOf(request.tenant());
        Invalidation invalidation =
            NewInvalidation(absl::StrCat("a prefix of it (", prefix.size(),
                                         " tokens) was invalidated by its tenant"));
        invalidation.AddCachedBlocks(*model, (*model)->blocks.CachedUnder(ns, prefix));
        const ModelState* in = *model;
        for (SessionRecord* session : sessions_.Live([&](const SessionRecord& s) {
               return s.model == in && s.ns == ns && s.tokens.size() >= prefix.size() &&
                      std::equal(prefix.begin(), prefix.end(), s.tokens.begin());
             })) {
          invalidation.AddSession(session);
        }
        return Finish(invalidation, &v1::TierCounters::prefix_invalidations,
                      &v1::TierCounters::set_prefix_invalidations);
      }(),
      std::move(done));
}

void Coordinator::InvalidateTenant(const v1::InvalidateTenantRequest& request,
                                   Callback<v1::InvalidationResult> done) {
  Send(
      [&]() -> absl::StatusOr<Revocation> {
        if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
        absl::MutexLock lock(&mu_);
        Invalidation invalidation = NewInvalidation("its tenant was invalidated by an operator");
        for (ModelState* model : models_.All()) {
          invalidation.AddCachedBlocks(
              model, model->blocks.CachedIn(model->NamespaceOf(request.tenant())));
        }
        for (SessionRecord* session : sessions_.Live(
                 [&](const SessionRecord& s) { return s.tenant == request.tenant(); })) {
          invalidation.AddSession(session);
        }
        return Finish(invalidation, &v1::TierCounters::tenant_invalidations,
                      &v1::TierCounters::set_tenant_invalidations);
      }(),
      std::move(done));
}

void Coordinator::InvalidateModel(const v1::InvalidateModelRequest& request,
                                  Callback<v1::InvalidationResult> done) {
  Send(
      [&]() -> absl::StatusOr<Revocation> {
        absl::MutexLock lock(&mu_);
        absl::StatusOr<ModelState*> model = models_.Find("model", request.model());
        if (!model.ok()) return model.status();
        Invalidation invalidation =
            NewInvalidation("its model version's K/V was invalidated by an operator");
        invalidation.AddModel(*model);
        return Finish(invalidation, &v1::TierCounters::model_invalidations,
                      &v1::TierCounters::set_model_invalidations);
      }(),
      std::move(done));
}

void Coordinator::RetireModel(const v1::RetireModelRequest& request,
                              Callback<v1::RetireModelResponse> done) {
  v1::RetireModelResponse response;
  *response.mutable_model() = request.model();
  // NOTE: planned before Send's arguments are evaluated: the callback below copies `response`,
  // which this fills.
  absl::StatusOr<Revocation> revocation = [&]() -> absl::StatusOr<Revocation> {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<ModelState*> model = models_.Find("model", request.model());
    if (!model.ok()) return model.status();
    Invalidation invalidation = NewInvalidation("its model version was retired");
    absl::StatusOr<int64_t> draining = Retire(*model, request.mode(), invalidation);
    if (!draining.ok()) return draining.status();
    response.set_draining_sessions(*draining);
    Revocation revocation = Finish(invalidation, nullptr, nullptr);
    if (request.mode() == v1::RETIRE_MODE_IMMEDIATE) RemoveModel(*model, "retired at once");
    return revocation;
  }();
  Send(std::move(revocation),
       [response, done = std::move(done)](absl::StatusOr<v1::InvalidationResult> result) mutable {
         if (!result.ok()) return done(result.status());
         *response.mutable_result() = *std::move(result);
         done(std::move(response));
       });
}

void Coordinator::RegisterModel(const v1::RegisterModelRequest& request,
                                Callback<v1::RegisterModelResponse> done) {
  v1::RegisterModelResponse response;
  std::vector<ModelState*> retired_now;
  // NOTE: planned before Send's arguments are evaluated, as in RetireModel.
  absl::StatusOr<Revocation> revocation = [&]() -> absl::StatusOr<Revocation> {
    // Checked first: a refused call registers nothing.
    if (!v1::RetireMode_IsValid(request.retire_others())) {
      return absl::InvalidArgumentError(
          absl::StrCat("retire_others: unknown mode ", request.retire_others()));
    }
    absl::MutexLock lock(&mu_);
    absl::StatusOr<ModelState*> model = models_.Register(request.model(), options_.eviction_policy,
                                                         options_.max_model_metadata_bytes);
    if (!model.ok()) return model.status();
    *response.mutable_model() = (*model)->spec;
    Invalidation invalidation = NewInvalidation(
        absl::StrCat("its model version was retired for ", ModelIdString(request.model().id())));
    if (request.retire_others() != v1::RETIRE_MODE_UNSPECIFIED) {
      for (ModelState* other : models_.OtherVersions(**model)) {
        if (other->draining) continue;
        absl::StatusOr<int64_t> draining =
            Retire(other, request.retire_others(), invalidation);
        if (!draining.ok()) return draining.status();
        *response.add_retired() = other->spec.id();
        response.set_draining_sessions(response.draining_sessions() + *draining);
        if (request.retire_others() == v1::RETIRE_MODE_IMMEDIATE) retired_now.push_back(other);
      }
    }
    Revocation revocation = Finish(invalidation, nullptr, nullptr);
    for (ModelState* other : retired_now) RemoveModel(other, "retired at once");
    FillVacancies();
    return revocation;
  }();
  Send(std::move(revocation),
       [response, done = std::move(done)](absl::StatusOr<v1::InvalidationResult> result) mutable {
         if (!result.ok()) return done(result.status());
         *response.mutable_result() = *std::move(result);
         done(std::move(response));
       });
}

absl::StatusOr<int64_t> Coordinator::Retire(ModelState* model, v1::RetireMode mode,
                                            Invalidation& invalidation) {
  switch (mode) {
    case v1::RETIRE_MODE_IMMEDIATE:
      // NOTE: no longer draining: its caller removes it, and RetireDrained must not first
      // (once this invalidation fails its last session), leaving the caller a freed model.
      model->draining = false;
      invalidation.AddModel(model);
      return 0;
    case v1::RETIRE_MODE_DRAIN: {
      if (model->draining) {
        return absl::FailedPreconditionError(absl::StrCat(
            "model: version ", ModelIdString(model->spec.id()), " is draining already"));
      }
      model->draining = true;
      int64_t active = 0;
      for (SessionRecord* session :
           sessions_.Live([model](const SessionRecord& s) { return s.model == model; })) {
        if (session->state == SessionRecord::State::kRetained) {
          invalidation.AddSession(session);  // between turns: it takes no new one
        } else {
          ++active;
        }
      }
      Log(absl::StrCat("model ", ModelIdString(model->spec.id()), " draining: ", active,
                       " active sessions may finish their turn"));
      return active;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("mode: expected RETIRE_MODE_IMMEDIATE or RETIRE_MODE_DRAIN, got ",
                       v1::RetireMode_Name(mode)));
  }
}

Invalidation Coordinator::NewInvalidation(std::string why) {
  const absl::Time until = options_.clock() + options_.session_idle_timeout;
  // NOTE: leases last at most the idle timeout from their grant, so none outlives `until`.
  return Invalidation(&sessions_, std::move(why), until, until);
}

Coordinator::Revocation Coordinator::Finish(Invalidation& invalidation,
                                            int64_t (v1::TierCounters::*get)() const,
                                            void (v1::TierCounters::*set)(int64_t)) {
  Revocation revocation;
  for (Invalidation::ModelRevocation& model : invalidation.Apply(&revocation.result)) {
    if (model.request.blocks().empty() && model.request.sessions().empty()) continue;
    std::vector<ShardCall> calls = ToEverySlot(*model.model, std::move(model.request));
    std::move(calls.begin(), calls.end(), std::back_inserter(revocation.calls));
  }
  if (get != nullptr) (tier_.*set)((tier_.*get)() + 1);
  tier_.set_sessions_invalidated(tier_.sessions_invalidated() + revocation.result.sessions());
  tier_.set_blocks_invalidated(tier_.blocks_invalidated() + revocation.result.blocks());
  if (revocation.result.sessions() > 0 || revocation.result.blocks() > 0) {
    Log(absl::StrCat("invalidated ", revocation.result.sessions(), " sessions and ",
                     revocation.result.blocks(), " blocks (", revocation.result.cached_blocks(),
                     " cached); revoking on ", revocation.calls.size(), " shards"));
  }
  RetireDrained();
  return revocation;
}

void Coordinator::Send(absl::StatusOr<Revocation> revocation,
                       Callback<v1::InvalidationResult> done) {
  if (!revocation.ok()) return done(revocation.status());
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  FanOut(*shard_control_, std::move(revocation->calls),
         [this, result = revocation->result, done = std::move(done)](
             const std::vector<ShardCall>& calls,
             const std::vector<absl::Status>& statuses) mutable {
           {
             absl::MutexLock lock(&mu_);
             const int32_t dropped = DropFailed(calls, statuses, "a revocation");
             result.set_shards_dropped(dropped);
             result.set_shards_acknowledged(static_cast<int32_t>(calls.size()) - dropped);
             --in_flight_;
           }
           done(std::move(result));
         });
}

std::vector<ShardCall> Coordinator::ToEverySlot(
    const ModelState& model, std::variant<v1::RevokeRequest, v1::CopyBlocksRequest> request) {
  std::vector<ShardCall> calls;
  for (const HeadSlot& slot : model.slots) {
    const ShardMember* member = shards_.Find(slot.shard_id);
    if (member == nullptr) continue;  // vacant: nothing of the model is there
    ShardCall& call = calls.emplace_back(ShardCall{member->id, member->address, request});
    std::visit([&](auto& r) { r.set_incarnation(slot.incarnation); }, call.request);
  }
  return calls;
}

int32_t Coordinator::DropFailed(const std::vector<ShardCall>& calls,
                                const std::vector<absl::Status>& statuses,
                                absl::string_view what) {
  int32_t dropped = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (statuses[i].ok()) continue;
    ++dropped;
    if (shards_.Find(calls[i].shard_id) == nullptr) continue;  // gone already
    tier_.set_shards_dropped(tier_.shards_dropped() + 1);
    RemoveShard(calls[i].shard_id, absl::StrCat("it did not acknowledge ", what, ": ",
                                                statuses[i].ToString()));
  }
  return dropped;
}

void Coordinator::RemoveModel(ModelState* model, absl::string_view why) {
  for (size_t slot = 0; slot < model->slots.size(); ++slot) {
    ShardMember* member = shards_.Find(model->slots[slot].shard_id);
    if (member != nullptr) {
      member->committed_bytes -= SlotPoolBytes(model->spec, static_cast<int>(slot));
    }
  }
  Log(absl::StrCat("model ", ModelIdString(model->spec.id()), " removed: ", why));
  tier_.set_models_retired(tier_.models_retired() + 1);
  sessions_.ForgetModel(model);
  models_.Remove(model);
  FillVacancies();
}

void Coordinator::RetireDrained() {
  for (ModelState* model : models_.All()) {
    if (model->draining && model->live_sessions == 0) RemoveModel(model, "drained");
  }
}

}  // namespace kvtier
