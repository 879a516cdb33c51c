#include "service/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"

namespace kvtier {
namespace {

absl::Status CheckTenant(const std::string& tenant) {
  if (!tenant.empty() && tenant.size() <= 128) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("tenant: expected 1..128 bytes, got ", tenant.size()));
}

}  // namespace

Coordinator::Coordinator(const CoordinatorOptions& options)
    : options_(options), lease_key_(NewLeaseKey()) {}

absl::StatusOr<v1::ModelSpec> Coordinator::RegisterModel(const v1::ModelSpec& model) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<ModelState*> state = models_.Register(model);
  if (!state.ok()) return state.status();
  FillVacancies();
  return (*state)->spec;
}

absl::StatusOr<v1::SessionInfo> Coordinator::OpenSession(const v1::OpenSessionRequest& request) {
  if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<ModelState*> model = models_.Find(request.model());
  if (!model.ok()) return model.status();
  if (!(*model)->Ready()) {
    return absl::UnavailableError(absl::StrCat(
        "model ", request.model(), ": waiting for shards (", (*model)->LiveSlots(), " of ",
        (*model)->slots.size(), " head ranges assigned, not all serving yet)"));
  }
  SessionRecord* session =
      sessions_.Open(*model, request.tenant(), options_.clock() + options_.session_idle_timeout);
  return DescribeSession(*session);
}

absl::StatusOr<v1::SessionInfo> Coordinator::GetSession(const v1::GetSessionRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found = FindSession(request.session_id(), request.tenant());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  session.expires_at =
      std::max(session.expires_at, options_.clock() + options_.session_idle_timeout);
  if (request.take_over()) {
    sessions_.TakeOver(&session);
  } else if (request.writer() != 0) {
    if (absl::Status status = CheckWriter(session, request.writer()); !status.ok()) return status;
  } else {
    v1::SessionInfo info = DescribeSession(session);
    info.clear_lease();
    info.clear_writer();
    return info;
  }
  return DescribeSession(session);
}

absl::StatusOr<v1::ExtendResponse> Coordinator::Extend(const v1::ExtendRequest& request) {
  if (request.reserve_tokens() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reserve_tokens: expected >= 0, got ", request.reserve_tokens()));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found =
      CommitWritten(request.session_id(), request.tenant(), request.writer(),
                    request.expected_context_len(), request.tokens());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  const v1::ModelSpec& spec = session.model->spec;
  const int64_t wanted = int64_t{session.context_len()} + request.reserve_tokens();
  const int64_t capacity = int64_t{spec.num_blocks()} * spec.block_size();
  if (wanted > capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat("reserve_tokens: the session would hold ", wanted, " tokens, more than model ",
                     spec.name(), " holds (", capacity, " = blocks x block_size)"));
  }
  const int64_t more = (wanted + spec.block_size() - 1) / spec.block_size() -
                       static_cast<int64_t>(session.blocks.size());
  if (more > 0) {
    if (absl::Status status =
            session.model->AllocateBlocks(static_cast<int32_t>(more), &session.blocks);
        !status.ok()) {
      return status;
    }
  }
  session.expires_at =
      std::max(session.expires_at, options_.clock() + options_.session_idle_timeout);

  v1::ExtendResponse response;
  response.set_context_len(session.context_len());
  *response.mutable_lease() = GrantLease(session);
  return response;
}

absl::StatusOr<v1::EndTurnResponse> Coordinator::EndTurn(const v1::EndTurnRequest& request) {
  const absl::Duration retain = request.retain_for_seconds() == 0
                                    ? options_.default_retention
                                    : absl::Seconds(request.retain_for_seconds());
  if (!(request.retain_for_seconds() >= 0) || retain > options_.max_retention) {
    return absl::InvalidArgumentError(absl::StrCat("retain_for_seconds: expected 0..",
                                                   absl::ToDoubleSeconds(options_.max_retention),
                                                   ", got ", request.retain_for_seconds()));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SessionRecord*> found =
      CommitWritten(request.session_id(), request.tenant(), request.writer(),
                    request.expected_context_len(), request.tokens());
  if (!found.ok()) return found.status();
  SessionRecord& session = **found;
  session.expires_at = options_.clock() + retain;

  v1::EndTurnResponse response;
  response.set_context_len(session.context_len());
  return response;
}

absl::Status Coordinator::CloseSession(const v1::CloseSessionRequest& request) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = CheckTenant(request.tenant()); !status.ok()) return status;
  // A lost session closes too: it releases nothing but its tombstone.
  absl::StatusOr<SessionRecord*> session = sessions_.Lookup(request.session_id(), request.tenant());
  if (!session.ok()) return session.status();
  sessions_.Close(*session);
  return absl::OkStatus();
}

v1::GetStatsResponse Coordinator::GetStats() {
  absl::MutexLock lock(&mu_);
  v1::GetStatsResponse response;
  response.set_shards(shards_.size());
  for (ModelState* model : models_.All()) {
    v1::ModelStats* stats = response.add_models();
    *stats->mutable_model() = model->spec;
    stats->set_live_shards(model->LiveSlots());
    stats->set_sessions(sessions_.CountFor(model));
    stats->set_blocks_used(model->allocator.num_used());
    stats->set_blocks_free(model->allocator.num_free());
    stats->set_sessions_lost(model->sessions_lost);
    stats->set_ready(model->Ready());
  }
  return response;
}

absl::StatusOr<v1::ShardAssignment> Coordinator::RegisterShard(
    const v1::RegisterShardRequest& request) {
  if (request.address().empty()) {
    return absl::InvalidArgumentError("address: expected host:port, got \"\"");
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
      Log(absl::StrCat("model ", model->spec.name(), " ready: all ", model->slots.size(),
                       " head ranges served"));
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

void Coordinator::Sweep() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  for (uint64_t id : shards_.SilentSince(now - options_.heartbeat_timeout)) {
    RemoveShard(id,
                absl::StrCat("the shard at ", shards_.Find(id)->address, " missed heartbeats for ",
                             absl::FormatDuration(options_.heartbeat_timeout)));
  }
  sessions_.CloseExpired(now);
}

absl::StatusOr<SessionRecord*> Coordinator::FindSession(const std::string& id,
                                                        const std::string& tenant) {
  if (absl::Status status = CheckTenant(tenant); !status.ok()) return status;
  return sessions_.Find(id, tenant);
}

absl::Status Coordinator::CheckWriter(const SessionRecord& session, uint64_t writer) const {
  if (writer == session.writer) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("writer: session ", session.id,
                   " is written by another client (it was taken over); resume it to continue"));
}

v1::BlockLease Coordinator::GrantLease(const SessionRecord& session) const {
  v1::BlockLease lease;
  lease.set_session_id(session.id);
  lease.set_model(session.model->spec.name());
  for (BlockId block : session.blocks) {
    lease.add_blocks(block);
    lease.add_generations(session.model->generations[block]);
  }
  for (uint64_t incarnation : session.placement) lease.add_shard_incarnations(incarnation);
  lease.set_expires_unix_micros(absl::ToUnixMicros(session.expires_at));
  SignLease(lease_key_, &lease);
  return lease;
}

v1::SessionInfo Coordinator::DescribeSession(const SessionRecord& session) {
  v1::SessionInfo info;
  info.set_session_id(session.id);
  *info.mutable_model() = session.model->spec;
  info.set_context_len(session.context_len());
  info.set_writer(session.writer);
  for (size_t slot = 0; slot < session.model->slots.size(); ++slot) {
    v1::ShardEndpoint* endpoint = info.add_shards();
    endpoint->set_slot(static_cast<int32_t>(slot));
    const ShardMember* member = shards_.Find(session.model->slots[slot].shard_id);
    endpoint->set_address(member != nullptr ? member->address : "");
    *endpoint->mutable_heads() = HeadRangeForSlot(session.model->spec, static_cast<int>(slot));
    endpoint->set_incarnation(session.model->slots[slot].incarnation);
  }
  *info.mutable_lease() = GrantLease(session);
  return info;
}

absl::StatusOr<SessionRecord*> Coordinator::CommitWritten(
    const std::string& session_id, const std::string& tenant, uint64_t writer,
    int32_t expected_context_len, const google::protobuf::RepeatedField<int32_t>& tokens) {
  absl::StatusOr<SessionRecord*> found = FindSession(session_id, tenant);
  if (!found.ok()) return found.status();
  SessionRecord* session = *found;
  if (absl::Status status = CheckWriter(*session, writer); !status.ok()) return status;
  if (expected_context_len != session->context_len()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expected_context_len: the session holds ", session->context_len(),
        " tokens, the request expected ", expected_context_len, " (another client advanced it?)"));
  }
  for (int i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens[", i, "]: expected a token id >= 0, got ", tokens[i]));
    }
  }
  const int64_t new_len = int64_t{session->context_len()} + tokens.size();
  if (new_len > session->capacity_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokens: ", new_len, " tokens exceed the ", session->capacity_tokens(),
        " that the session's blocks hold; reserve them with Extend and write them first"));
  }
  session->tokens.insert(session->tokens.end(), tokens.begin(), tokens.end());
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
      Log(absl::StrCat("model ", model->spec.name(), " slot ", slot, " (",
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
          vacant, " vacant): the smallest, model ", smallest->model->spec.name(), " slot ",
          smallest->slot, " (",
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
    Log(absl::StrCat("model ", model->spec.name(), " slot ", vacated, " vacant; ", dropped,
                     " sessions dropped, their K/V lost with shard ", id));
  }
  shards_.Remove(id);
  FillVacancies();
}

v1::ShardAssignment Coordinator::AssignmentFor(const ShardMember& member) {
  v1::ShardAssignment assignment;
  assignment.set_shard_id(member.id);
  assignment.set_lease_key(lease_key_);
  assignment.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
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
