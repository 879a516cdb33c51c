#include "service/coordinator.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/listen_address.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/quoted_prefix.h"
#include "proto/wire/time_convert.h"
#include "service/grpc_shard_control.h"
#include "service/head_placement.h"
#include "service/request_checks.h"

namespace kvtier {

Coordinator::Coordinator(const CoordinatorOptions& options)
    : options_(options),
      lease_key_(NewLeaseKey()),
      shard_control_(options.shard_control != nullptr
                         ? options.shard_control
                         : std::make_shared<GrpcShardControl>(options.shard_control_deadline,
                                                              options.shard_channels)) {}

Coordinator::~Coordinator() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int64_t* in_flight) { return *in_flight == 0; }, &in_flight_));
}

absl::StatusOr<v1::ModelSpec> Coordinator::RegisterModel(const v1::ModelSpec& model) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<ModelState*> state =
      models_.Register(model, options_.eviction_policy, options_.max_model_metadata_bytes);
  if (!state.ok()) return state.status();
  FillVacancies();
  return (*state)->spec;
}

absl::StatusOr<v1::OpenSessionResponse> Coordinator::OpenSession(
    const v1::OpenSessionRequest& request) {
  if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<ModelState*> model = models_.Find("model", request.model());
  if (!model.ok()) return model.status();
  if (absl::Status status = CheckNotDraining(**model); !status.ok()) return status;
  if (!(*model)->Ready()) {
    return absl::UnavailableError(absl::StrCat(
        "model ", ModelIdString(request.model()), ": waiting for shards (", (*model)->LiveSlots(),
        " of ", (*model)->slots.size(), " head ranges assigned, not all serving yet)"));
  }
  SessionRecord* session =
      sessions_.Open(*model, request.tenant(), (*model)->NamespaceFor(request.tenant()),
                     options_.clock() + options_.session_idle_timeout);
  v1::OpenSessionResponse response;
  *response.mutable_session() = DescribeSession(*session);
  *response.mutable_grant() = GrantWriter(*session);
  return response;
}

absl::StatusOr<v1::GetSessionResponse> Coordinator::GetSession(
    const v1::GetSessionRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> session = FindSession(request.session_id(), request.tenant());
  if (!session.ok()) return session.status();
  v1::GetSessionResponse response;
  *response.mutable_session() = DescribeSession(**session);
  return response;
}

absl::StatusOr<v1::TakeOverSessionResponse> Coordinator::TakeOverSession(
    const v1::TakeOverSessionRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found = FindSession(request.session_id(), request.tenant());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  sessions_.TakeOver(&session);
  sessions_.Activate(&session, options_.clock() + options_.session_idle_timeout);
  v1::TakeOverSessionResponse response;
  *response.mutable_session() = DescribeSession(session);
  *response.mutable_grant() = GrantWriter(session);
  return response;
}

absl::StatusOr<v1::RenewLeaseResponse> Coordinator::RenewLease(
    const v1::RenewLeaseRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found =
      FindWritable(request.session_id(), request.tenant(), request.writer());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  sessions_.Activate(&session, options_.clock() + options_.session_idle_timeout);
  v1::RenewLeaseResponse response;
  response.set_context_len(session.context_len());
  *response.mutable_lease() = GrantLease(session);
  return response;
}

absl::StatusOr<v1::ExtendResponse> Coordinator::Extend(const v1::ExtendRequest& request) {
  if (request.reserve_tokens() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reserve_tokens: expected >= 0, got ", request.reserve_tokens()));
  }
  if (absl::Status status = CheckTokenIds("next_tokens", request.next_tokens()); !status.ok()) {
    return status;
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found =
      CheckCommit(request.session_id(), request.tenant(), request.writer(),
                  request.expected_context_len(), request.tokens());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  ModelState& model = *session.model;
  const v1::ModelSpec& spec = model.spec;
  const int32_t block_size = spec.block_size();

  // Match the prompt against the cached prefixes: only after a history of cached blocks (so
  // no tokens to commit first), in whole blocks, never its last token.
  const absl::Span<const int32_t> next = request.next_tokens();
  std::vector<BlockId> matched;
  if (request.tokens().empty() && !next.empty() && session.MatchableHistory() && !model.draining) {
    const BlockId parent =
        session.cached_blocks == 0 ? kNoBlock : session.blocks[session.cached_blocks - 1];
    matched = model.blocks.Match(MatchNamespaces(session), parent, next,
                                 static_cast<int32_t>((next.size() - 1) / block_size));
  }
  // Matched blocks take the places of the blocks reserved past the history (unwritten).
  const int64_t kept = matched.empty() ? session.blocks.size() : session.cached_blocks;
  const int64_t wanted = int64_t{session.context_len()} + request.tokens_size() +
                         static_cast<int64_t>(next.size()) + request.reserve_tokens();
  const int64_t capacity = int64_t{spec.num_blocks()} * block_size;
  if (wanted > capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat("reserve_tokens: the session would hold ", wanted, " tokens, more than model ",
                     ModelIdString(spec.id()), " holds (", capacity, " = blocks x block_size)"));
  }
  const int64_t needed = (wanted + block_size - 1) / block_size;
  const int32_t fresh = static_cast<int32_t>(
      std::max<int64_t>(0, needed - kept - static_cast<int64_t>(matched.size())));
  absl::StatusOr<std::vector<SessionRecord*>> evict =
      RetainedToEvict(session, matched, fresh, static_cast<int32_t>(session.blocks.size() - kept));
  if (!evict.ok()) return evict.status();

  // Nothing can fail from here on: apply.
  EvictRetained(model, *evict);
  std::vector<BlockId> reserved_past(session.blocks.begin() + kept, session.blocks.end());
  session.blocks.resize(kept);
  model.ReleaseBlocks(reserved_past);
  std::vector<NamespaceId> evicted;
  if (absl::Status status =
          model.blocks.Reserve(matched, fresh, &session.blocks, &evicted, QuotaOf(session));
      !status.ok()) {
    return absl::InternalError(
        absl::StrCat("Extend: blocks counted free were not: ", status.message()));
  }
  model.CountEvicted(evicted);
  CommitTokens(session, request.tokens());
  const int32_t cached = static_cast<int32_t>(matched.size()) * block_size;
  session.tokens.insert(session.tokens.end(), next.begin(), next.begin() + cached);
  session.cached_blocks += static_cast<int32_t>(matched.size());
  if (!next.empty()) {
    Bump(model, session.tenant, &v1::CacheCounters::prompt_tokens,
         &v1::CacheCounters::set_prompt_tokens, static_cast<int64_t>(next.size()));
    Bump(model, session.tenant, &v1::CacheCounters::cached_tokens,
         &v1::CacheCounters::set_cached_tokens, cached);
  }
  sessions_.Activate(&session, options_.clock() + options_.session_idle_timeout);

  v1::ExtendResponse response;
  response.set_context_len(session.context_len());
  response.set_cached_tokens(cached);
  *response.mutable_lease() = GrantLease(session);
  return response;
}

void Coordinator::EndTurn(const v1::EndTurnRequest& request, Callback<v1::EndTurnResponse> done) {
  v1::EndTurnResponse response;
  bool ended = false;  // the version is draining: the session ends with its turn
  absl::StatusOr<Revocation> revocation = [&]() -> absl::StatusOr<Revocation> {
    const absl::Duration asked = FromProtoDuration(request.retain_for());
    if (asked < absl::ZeroDuration() || asked > options_.max_retention) {
      return absl::InvalidArgumentError(absl::StrCat("retain_for: expected 0s..",
                                                     absl::FormatDuration(options_.max_retention),
                                                     ", got ", absl::FormatDuration(asked)));
    }
    const absl::Duration retain =
        asked == absl::ZeroDuration() ? options_.default_retention : asked;
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found =
        CheckCommit(request.session_id(), request.tenant(), request.writer(),
                    request.expected_context_len(), request.tokens());
    if (!found.ok()) return found.status();
    SessionRecord& session = **found;
    CommitTokens(session, request.tokens());
    response.set_context_len(session.context_len());
    if (session.model->draining) {
      // No new turn: the session ends, and the shards refuse its leases before this answers.
      ended = true;
      Invalidation invalidation =
          NewInvalidation("its model version was retired: the session ended with its turn");
      invalidation.AddSession(&session);
      return Finish(invalidation, nullptr, nullptr);
    }
    sessions_.Retain(&session, options_.clock() + retain);
    Bump(*session.model, session.tenant, &v1::CacheCounters::sessions_retained,
         &v1::CacheCounters::set_sessions_retained, 1);
    return Revocation{};
  }();
  if (!revocation.ok()) return done(revocation.status());
  if (!ended) return done(std::move(response));
  Send(*std::move(revocation),
       [response, done = std::move(done)](absl::StatusOr<v1::InvalidationResult> result) {
         if (!result.ok()) return done(result.status());
         done(response);
       });
}

absl::Status Coordinator::CloseSession(const v1::CloseSessionRequest& request) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
  // A lost session closes too: it releases nothing but its tombstone.
  absl::StatusOr<SessionRecord*> session = sessions_.Lookup(request.session_id(), request.tenant());
  if (!session.ok()) return session.status();
  sessions_.Close(*session);
  RetireDrained();
  return absl::OkStatus();
}

v1::GetStatsResponse Coordinator::GetStats() {
  absl::MutexLock lock(&mu_);
  v1::GetStatsResponse response;
  response.set_shards(shards_.size());
  *response.mutable_tier() = tier_;
  for (ModelState* model : models_.All()) {
    v1::ModelStats* stats = response.add_models();
    *stats->mutable_model() = model->spec;
    stats->set_live_shards(model->LiveSlots());
    const BlockCounts blocks = model->blocks.counts();
    stats->set_sessions(model->live_sessions);
    stats->set_blocks_used(blocks.referenced);
    stats->set_blocks_free(blocks.free);
    stats->set_blocks_cached(blocks.cached);
    stats->set_sessions_lost(model->sessions_lost);
    stats->set_ready(model->Ready());
    stats->set_draining(model->draining);
    *stats->mutable_cache() = model->cache;
    for (const auto& [tenant, counters] : model->tenant_cache) {
      v1::TenantStats* tenant_stats = stats->add_tenants();
      tenant_stats->set_tenant(tenant);
      *tenant_stats->mutable_cache() = counters;
    }
  }
  return response;
}

absl::StatusOr<v1::ShardAssignment> Coordinator::RegisterShard(
    const v1::RegisterShardRequest& request) {
  if (absl::Status status = ParseAdvertisedAddress("address", request.address()).status();
      !status.ok()) {
    return status;
  }
  if (request.capacity_bytes() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity_bytes: expected > 0, got ", request.capacity_bytes()));
  }
  absl::MutexLock lock(&mu_);
  if (ShardMember* previous = shards_.FindByAddress(request.address())) {
    RemoveShard(previous->id, absl::StrCat("the shard at ", request.address(), " restarted"));
  }
  ShardMember* member = shards_.Add(request.address(), request.capacity_bytes(), options_.clock());
  Log(absl::StrCat("shard ", member->id, " joined: ", member->address, ", capacity ",
                   member->capacity_bytes, " bytes"));
  FillVacancies();
  return AssignmentFor(*member);
}

absl::StatusOr<v1::ShardAssignment> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  ShardMember* member = shards_.Find(request.shard_id());
  if (member == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("shard_id: unknown shard ", request.shard_id(), "; register again"));
  }
  member->last_heard = options_.clock();
  for (ModelState* model : models_.All()) {
    const bool was_ready = model->Ready();
    for (HeadSlot& slot : model->slots) {
      if (slot.shard_id != member->id) continue;
      for (uint64_t incarnation : request.ready_incarnations()) {
        if (incarnation == slot.incarnation) slot.ready = true;
      }
    }
    if (!was_ready && model->Ready()) {
      Log(absl::StrCat("model ", ModelIdString(model->spec.id()), " ready: all ",
                       model->slots.size(), " head ranges served"));
    }
  }
  FillVacancies();
  return AssignmentFor(*member);
}

absl::Status Coordinator::DeregisterShard(const v1::DeregisterShardRequest& request) {
  absl::MutexLock lock(&mu_);
  const ShardMember* member = shards_.Find(request.shard_id());
  if (member == nullptr) {
    return absl::NotFoundError(absl::StrCat("shard_id: unknown shard ", request.shard_id()));
  }
  RemoveShard(member->id, absl::StrCat("the shard at ", member->address, " left the tier"));
  return absl::OkStatus();
}

bool Coordinator::AnyModelReady() {
  absl::MutexLock lock(&mu_);
  for (ModelState* model : models_.All()) {
    if (model->Ready() && !model->draining) return true;
  }
  return false;
}

void Coordinator::Sweep() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  for (uint64_t id : shards_.SilentSince(now - options_.heartbeat_timeout)) {
    RemoveShard(id,
                absl::StrCat("the shard at ", shards_.Find(id)->address, " missed heartbeats for ",
                             absl::FormatDuration(options_.heartbeat_timeout)));
  }
  for (SessionRecord* session : sessions_.Expired(now)) {
    if (session->state == SessionRecord::State::kRetained) {
      Bump(*session->model, session->tenant, &v1::CacheCounters::sessions_expired,
           &v1::CacheCounters::set_sessions_expired, 1);
    }
    sessions_.Close(session);
  }
  RetireDrained();
}

absl::StatusOr<SessionRecord*> Coordinator::FindSession(const std::string& id,
                                                        const std::string& tenant) {
  if (absl::Status status = CheckTenant(tenant); !status.ok()) return status;
  return sessions_.Find(id, tenant);
}

absl::StatusOr<SessionRecord*> Coordinator::FindWritable(const std::string& id,
                                                         const std::string& tenant,
                                                         uint64_t writer) {
  absl::StatusOr<SessionRecord*> session = FindSession(id, tenant);
  if (!session.ok() || writer == (*session)->writer) return session;
  return WithReason(
      absl::AbortedError(absl::StrCat("writer: session ", id,
                                      " is written by another client (it was taken over); take "
                                      "it over again to continue")),
      v1::ERROR_REASON_WRITER_SUPERSEDED);
}

BlockQuota Coordinator::QuotaOf(const SessionRecord& session) const {
  auto listed = options_.tenant_quotas.find(session.tenant);
  const int32_t cap =
      listed != options_.tenant_quotas.end() ? listed->second : options_.default_tenant_quota;
  return BlockQuota{.owner = session.ns,
                    .max_blocks = cap > 0 ? cap : std::numeric_limits<int32_t>::max()};
}

absl::Status Coordinator::CheckQuota(const SessionRecord& session,
                                     absl::Span<const BlockId> matched, int32_t fresh,
                                     int32_t releasing, int32_t uncovering) const {
  absl::Status status =
      session.model->blocks.CheckQuota(QuotaOf(session), matched, fresh, releasing, uncovering);
  if (status.ok()) return status;
  return absl::ResourceExhaustedError(
      absl::StrCat("tenant ", QuotedPrefix(session.tenant), ", model ",
                   ModelIdString(session.model->spec.id()), ": ", status.message()));
}

std::vector<NamespaceId> Coordinator::MatchNamespaces(const SessionRecord& session) {
  std::vector<NamespaceId> namespaces = {session.ns};
  if (!options_.public_tenant.empty() && session.tenant != options_.public_tenant) {
    namespaces.push_back(session.model->NamespaceFor(options_.public_tenant));
  }
  return namespaces;
}

absl::StatusOr<std::vector<SessionRecord*>> Coordinator::RetainedToEvict(
    const SessionRecord& session, absl::Span<const BlockId> matched, int32_t fresh,
    int32_t releasing) {
  const BlockManager& blocks = session.model->blocks;
  int64_t available = blocks.Available();
  for (BlockId block : matched) available -= blocks.refcount(block) == 0 ? 1 : 0;
  if (session.blocks.size() > static_cast<size_t>(session.cached_blocks) && !matched.empty()) {
    // The unwritten blocks reserved past the history go back.
    available += static_cast<int64_t>(session.blocks.size()) - session.cached_blocks;
  }
  // What evicting retained sessions would give back: blocks whose last reference they hold
  // (not those this Extend takes), free again or left cached; of the tenant's own blocks, how
  // many would be freed (`releasing`) and how many left cached for its quota to evict.
  std::vector<SessionRecord*> victims;
  absl::flat_hash_set<const SessionRecord*> chosen;
  absl::flat_hash_map<BlockId, int32_t> dropped;
  const absl::flat_hash_set<BlockId> taken(matched.begin(), matched.end());
  int32_t uncovering = 0;
  const auto evict = [&](SessionRecord* retained) {
    victims.push_back(retained);
    chosen.insert(retained);
    for (BlockId block : retained->blocks) {
      if (++dropped[block] != blocks.refcount(block) || taken.contains(block)) continue;
      ++available;
      if (blocks.owner(block) != session.ns) continue;
      ++(blocks.cached(block) ? uncovering : releasing);
    }
  };
  const std::vector<SessionRecord*> retained = options_.evict_retained_sessions
                                                   ? sessions_.RetainedOldestFirst()
                                                   : std::vector<SessionRecord*>();
  // The tenant's own retained sessions while it is over its quota (computed once: evicting them
  // changes only what they release or uncover).
  const int64_t shortfall = session.model->blocks.QuotaShortfall(QuotaOf(session), matched, fresh);
  const auto over_quota = [&] { return shortfall - releasing - uncovering > 0; };
  for (SessionRecord* candidate : retained) {
    if (!over_quota()) break;
    if (candidate != &session && candidate->ns == session.ns) evict(candidate);
  }
  if (over_quota()) return CheckQuota(session, matched, fresh, releasing, uncovering);
  // Then any of the model's while the pool is short.
  for (SessionRecord* candidate : retained) {
    if (fresh <= available) return victims;
    if (candidate != &session && candidate->model == session.model && !chosen.contains(candidate)) {
      evict(candidate);
    }
  }
  if (fresh <= available) return victims;
  return absl::ResourceExhaustedError(absl::StrCat(
      "model ", ModelIdString(session.model->spec.id()), ": ", fresh,
      " more blocks needed, but only ", available,
      " can be had (free, cached, or held by retained sessions only) of ", blocks.num_blocks()));
}

void Coordinator::EvictRetained(ModelState& model, const std::vector<SessionRecord*>& victims) {
  for (SessionRecord* victim : victims) {
    sessions_.MarkLost(victim, "its K/V was evicted for room while retained", victim->deadline);
    Bump(model, victim->tenant, &v1::CacheCounters::sessions_evicted,
         &v1::CacheCounters::set_sessions_evicted, 1);
  }
}

absl::Status Coordinator::CheckNotDraining(const ModelState& model) {
  if (!model.draining) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("model: version ", ModelIdString(model.spec.id()),
                   " is being retired (draining): open sessions on another version"));
}

void Coordinator::CommitTokens(SessionRecord& session, absl::Span<const int32_t> tokens) {
  ModelState& model = *session.model;
  const int32_t block_size = model.spec.block_size();
  const int32_t first_new = session.context_len() / block_size;
  session.tokens.insert(session.tokens.end(), tokens.begin(), tokens.end());
  const int32_t full = session.context_len() / block_size;
  for (int32_t i = first_new; i < full && !session.chain_ended; ++i) {
    if (session.cached_blocks != i) break;
    const BlockId parent = i == 0 ? kNoBlock : session.blocks[i - 1];
    const absl::Span<const int32_t> block_tokens =
        absl::MakeConstSpan(session.tokens).subspan(int64_t{i} * block_size, block_size);
    if (!model.blocks.Cache(session.blocks[i], session.ns, parent, block_tokens)) {
      session.chain_ended = true;  // the same content is cached already, in another block
      break;
    }
    ++session.cached_blocks;
    Bump(model, session.tenant, &v1::CacheCounters::blocks_cached,
         &v1::CacheCounters::set_blocks_cached, 1);
  }
}

void Coordinator::Bump(ModelState& model, const std::string& tenant,
                       int64_t (v1::CacheCounters::*get)() const,
                       void (v1::CacheCounters::*set)(int64_t), int64_t by) {
  const ModelState::Counters counters = model.CountersFor(tenant);
  for (v1::CacheCounters* c : {counters.model, counters.tenant}) (c->*set)((c->*get)() + by);
}

v1::BlockLease Coordinator::GrantLease(const SessionRecord& session) const {
  v1::BlockLease lease;
  lease.set_session_id(session.id);
  *lease.mutable_model() = session.model->spec.id();
  for (BlockId block : session.blocks) {
    lease.add_blocks(block);
    lease.add_generations(session.model->blocks.generation(block));
  }
  for (uint64_t incarnation : session.placement) lease.add_shard_incarnations(incarnation);
  lease.set_writer_epoch(session.writer_epoch);
  lease.set_writable_from(session.context_len());
  *lease.mutable_expires_at() = ToProtoTimestamp(session.deadline);
  SignLease(lease_key_, &lease);
  return lease;
}

v1::WriterGrant Coordinator::GrantWriter(const SessionRecord& session) const {
  v1::WriterGrant grant;
  grant.set_writer(session.writer);
  *grant.mutable_lease() = GrantLease(session);
  return grant;
}

v1::SessionInfo Coordinator::DescribeSession(const SessionRecord& session) {
  v1::SessionInfo info;
  info.set_session_id(session.id);
  *info.mutable_model() = session.model->spec;
  info.set_context_len(session.context_len());
  for (size_t slot = 0; slot < session.model->slots.size(); ++slot) {
    v1::ShardEndpoint* endpoint = info.add_shards();
    endpoint->set_slot(static_cast<int32_t>(slot));
    const ShardMember* member = shards_.Find(session.model->slots[slot].shard_id);
    endpoint->set_address(member != nullptr ? member->address : "");
    *endpoint->mutable_heads() = HeadRangeForSlot(session.model->spec, static_cast<int>(slot));
    endpoint->set_incarnation(session.model->slots[slot].incarnation);
  }
  return info;
}

absl::StatusOr<SessionRecord*> Coordinator::CheckCommit(
    const std::string& session_id, const std::string& tenant, uint64_t writer,
    int32_t expected_context_len, const google::protobuf::RepeatedField<int32_t>& tokens) {
  absl::StatusOr<SessionRecord*> found = FindWritable(session_id, tenant, writer);
  if (!found.ok()) return found.status();
  SessionRecord* session = *found;
  if (expected_context_len != session->context_len()) {
    return WithReason(
        absl::AbortedError(absl::StrCat("expected_context_len: the session holds ",
                                        session->context_len(), " tokens, the request expected ",
                                        expected_context_len, " (another client advanced it?)")),
        v1::ERROR_REASON_CONTEXT_CHANGED);
  }
  if (absl::Status status = CheckTokenIds("tokens", tokens); !status.ok()) return status;
  const int64_t new_len = int64_t{session->context_len()} + tokens.size();
  if (new_len > session->capacity_tokens()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tokens: ", new_len, " tokens exceed the ", session->capacity_tokens(),
        " that the session's blocks hold; reserve them with Extend and write them first"));
  }
  return session;
}

void Coordinator::FillVacancies() {
  struct Vacancy {
    const ModelState* model;
    int slot;
    int64_t bytes;
  };
  std::vector<Vacancy> vacancies;
  for (ModelState* model : models_.All()) {
    for (size_t slot = 0; slot < model->slots.size(); ++slot) {
      HeadSlot& head_slot = model->slots[slot];
      if (head_slot.shard_id != 0) continue;
      const int64_t bytes = SlotPoolBytes(model->spec, static_cast<int>(slot));
      ShardMember* best = nullptr;
      for (ShardMember* member : shards_.All()) {
        if (model->HostedBy(member->id) ||
            member->capacity_bytes - member->committed_bytes < bytes) {
          continue;
        }
        if (best == nullptr || member->committed_bytes < best->committed_bytes) best = member;
      }
      if (best == nullptr) {
        vacancies.push_back({model, static_cast<int>(slot), bytes});
        continue;
      }
      head_slot = HeadSlot{best->id, next_incarnation_++, false};
      best->committed_bytes += bytes;
      Log(absl::StrCat("model ", ModelIdString(model->spec.id()), " slot ", slot, " (",
                       HeadRangeString(HeadRangeForSlot(model->spec, static_cast<int>(slot))), ", ",
                       bytes, " bytes) assigned to shard ", best->id, " at ", best->address,
                       ", incarnation ", head_slot.incarnation));
    }
  }
  // What is still vacant fits no shard that could take it (one holding no slot of the model).
  for (ShardMember* member : shards_.All()) {
    const Vacancy* smallest = nullptr;
    int vacant = 0;
    for (const Vacancy& vacancy : vacancies) {
      if (vacancy.model->HostedBy(member->id)) continue;
      ++vacant;
      if (smallest == nullptr || vacancy.bytes < smallest->bytes) smallest = &vacancy;
    }
    std::string reason;
    if (smallest != nullptr) {
      reason = absl::StrCat(
          "capacity ", member->capacity_bytes, " bytes (",
          member->capacity_bytes - member->committed_bytes, " free) fits no vacant head range (",
          vacant, " vacant): the smallest, model ", ModelIdString(smallest->model->spec.id()),
          " slot ", smallest->slot, " (",
          HeadRangeString(HeadRangeForSlot(smallest->model->spec, smallest->slot)), "), needs ",
          smallest->bytes, " bytes");
    }
    if (!reason.empty() && reason != member->no_room_reason) {
      Log(absl::StrCat("shard ", member->id, " at ", member->address, ": ", reason));
    }
    member->no_room_reason = std::move(reason);
  }
}

void Coordinator::RemoveShard(uint64_t id, const std::string& why) {
  Log(absl::StrCat("shard ", id, " removed: ", why));
  for (ModelState* model : models_.All()) {
    int vacated = -1;  // a shard holds at most one slot of a model
    for (size_t slot = 0; slot < model->slots.size(); ++slot) {
      if (model->slots[slot].shard_id != id) continue;
      model->slots[slot] = HeadSlot{};
      vacated = static_cast<int>(slot);
    }
    if (vacated < 0) continue;
    const int64_t dropped = sessions_.DropLost(model, absl::StrCat("its K/V was lost: ", why));
    Log(absl::StrCat("model ", ModelIdString(model->spec.id()), " slot ", vacated, " vacant; ",
                     dropped, " sessions dropped, their K/V lost with shard ", id));
  }
  shards_.Remove(id);
  FillVacancies();
  RetireDrained();
}

v1::ShardAssignment Coordinator::AssignmentFor(const ShardMember& member) {
  v1::ShardAssignment assignment;
  assignment.set_shard_id(member.id);
  assignment.set_lease_key(lease_key_);
  *assignment.mutable_heartbeat_interval() = ToProtoDuration(options_.heartbeat_interval);
  assignment.set_no_room_reason(member.no_room_reason);
  for (ModelState* model : models_.All()) {
    for (size_t slot = 0; slot < model->slots.size(); ++slot) {
      if (model->slots[slot].shard_id != member.id) continue;
      v1::HostedRange* range = assignment.add_ranges();
      *range->mutable_model() = model->spec;
      range->set_slot(static_cast<int32_t>(slot));
      *range->mutable_heads() = HeadRangeForSlot(model->spec, static_cast<int>(slot));
      range->set_incarnation(model->slots[slot].incarnation);
    }
  }
  return assignment;
}

}  // namespace kvtier
