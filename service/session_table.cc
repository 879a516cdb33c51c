#include "service/session_table.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {
namespace {

// `size` bytes from the system's cryptographic source. NOTE: ids from a weak source could be
// guessed; there is no sane fallback.
void RandomBytes(void* bytes, int size) {
  if (RAND_bytes(static_cast<unsigned char*>(bytes), size) != 1) std::abort();
}

std::string NewSessionId() {
  char bytes[16];
  RandomBytes(bytes, sizeof(bytes));
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

uint64_t NewWriter() {
  uint64_t writer = 0;
  while (writer == 0) RandomBytes(&writer, sizeof(writer));
  return writer;
}

}  // namespace

SessionRecord* SessionTable::Open(ModelState* model, const std::string& tenant, NamespaceId ns,
                                  absl::Time deadline) {
  auto session = std::make_unique<SessionRecord>();
  session->id = NewSessionId();
  session->tenant = tenant;
  session->model = model;
  session->ns = ns;
  session->placement = model->Placement();
  session->writer = NewWriter();
  SessionRecord* raw = session.get();
  sessions_.emplace(raw->id, std::move(session));
  Enqueue(raw, SessionRecord::State::kActive, deadline);
  ++model->live_sessions;
  return raw;
}

SessionRecord* SessionTable::Fork(const SessionRecord& source, absl::Time deadline) {
  SessionRecord* fork = Open(source.model, source.tenant, source.ns, deadline);
  fork->tokens = source.tokens;
  fork->cached_blocks = source.cached_blocks;
  fork->chain_ended = source.chain_ended;
  fork->placement = source.placement;
  return fork;
}

void SessionTable::TakeOver(SessionRecord* session) {
  session->writer = NewWriter();
  ++session->writer_epoch;
}

absl::StatusOr<SessionRecord*> SessionTable::Lookup(const std::string& id,
                                                    const std::string& tenant) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->tenant != tenant) {
    return absl::NotFoundError(
        absl::StrCat("session_id: no open session ", QuotedPrefix(id), " for this tenant"));
  }
  return it->second.get();
}

absl::StatusOr<SessionRecord*> SessionTable::Find(const std::string& id,
                                                  const std::string& tenant) {
  absl::StatusOr<SessionRecord*> found = Lookup(id, tenant);
  if (!found.ok()) return found;
  SessionRecord* session = *found;
  if (session->state == SessionRecord::State::kLost) {
    return WithReason(
        absl::FailedPreconditionError(absl::StrCat("session ", id, ": ", session->lost_reason,
                                                   "; open a new session and re-prefill")),
        session->lost_code);
  }
  return session;
}

void SessionTable::Activate(SessionRecord* session, absl::Time deadline) {
  const bool active = session->state == SessionRecord::State::kActive;
  Enqueue(session, SessionRecord::State::kActive,
          active ? std::max(session->deadline, deadline) : deadline);
}

void SessionTable::Retain(SessionRecord* session, absl::Time deadline) {
  Enqueue(session, SessionRecord::State::kRetained, deadline);
}

void SessionTable::MarkLost(SessionRecord* session, const std::string& reason,
                            absl::Time deadline, v1::ErrorReason code) {
  session->model->ReleaseBlocks(session->blocks);
  session->blocks.clear();
  session->lost_reason = reason;
  session->lost_code = code;
  --session->model->live_sessions;
  Enqueue(session, SessionRecord::State::kLost, deadline);
}

void SessionTable::Close(SessionRecord* session) {
  if (session->state != SessionRecord::State::kLost) {
    session->model->ReleaseBlocks(session->blocks);
    --session->model->live_sessions;
  }
  Dequeue(session);
  sessions_.erase(session->id);
}

int64_t SessionTable::DropLost(ModelState* model, const std::string& reason) {
  const std::vector<uint64_t> placement = model->Placement();
  std::vector<SessionRecord*> misplaced;
  for (auto& [id, session] : sessions_) {
    if (session->model == model && session->state != SessionRecord::State::kLost &&
        session->placement != placement) {
      misplaced.push_back(session.get());
    }
  }
  for (SessionRecord* session : misplaced) MarkLost(session, reason, session->deadline);
  model->sessions_lost += static_cast<int64_t>(misplaced.size());
  return static_cast<int64_t>(misplaced.size());
}

std::vector<SessionRecord*> SessionTable::Live(
    absl::FunctionRef<bool(const SessionRecord&)> match) const {
  std::vector<SessionRecord*> live;
  for (const auto& [id, session] : sessions_) {
    if (session->state != SessionRecord::State::kLost && match(*session)) {
      live.push_back(session.get());
    }
  }
  return live;
}

void SessionTable::ForgetModel(const ModelState* model) {
  for (auto& [id, session] : sessions_) {
    if (session->model == model) session->model = nullptr;
  }
}

std::vector<SessionRecord*> SessionTable::RetainedOldestFirst() const {
  std::vector<SessionRecord*> retained;
  retained.reserve(retained_.size());
  for (const auto& [deadline, session] : retained_) retained.push_back(session);
  return retained;
}

std::vector<SessionRecord*> SessionTable::Expired(absl::Time now) const {
  std::vector<SessionRecord*> expired;
  for (const Queue* queue : {&active_, &retained_, &lost_}) {
    for (auto it = queue->begin(); it != queue->end() && it->first <= now; ++it) {
      expired.push_back(it->second);
    }
  }
  return expired;
}

SessionTable::Queue& SessionTable::QueueOf(const SessionRecord& session) {
  switch (session.state) {
    case SessionRecord::State::kActive:
      return active_;
    case SessionRecord::State::kRetained:
      return retained_;
    case SessionRecord::State::kLost:
      return lost_;
  }
  return lost_;
}

void SessionTable::Dequeue(SessionRecord* session) {
  QueueOf(*session).erase({session->deadline, session});
}

void SessionTable::Enqueue(SessionRecord* session, SessionRecord::State state,
                           absl::Time deadline) {
  Dequeue(session);
  session->state = state;
  session->deadline = deadline;
  QueueOf(*session).insert({deadline, session});
}

}  // namespace kvtier
