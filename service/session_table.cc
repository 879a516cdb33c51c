#include "service/session_table.h"

#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"

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

SessionRecord* SessionTable::Open(ModelState* model, const std::string& tenant,
                                  absl::Time expires_at) {
  auto session = std::make_unique<SessionRecord>();
  session->id = NewSessionId();
  session->tenant = tenant;
  session->model = model;
  session->placement = model->Placement();
  session->expires_at = expires_at;
  session->writer = NewWriter();
  SessionRecord* raw = session.get();
  sessions_.emplace(raw->id, std::move(session));
  return raw;
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
        absl::StrCat("session_id: no open session \"", id, "\" for this tenant"));
  }
  return it->second.get();
}

absl::StatusOr<SessionRecord*> SessionTable::Find(const std::string& id,
                                                  const std::string& tenant) {
  absl::StatusOr<SessionRecord*> found = Lookup(id, tenant);
  if (!found.ok()) return found;
  SessionRecord* session = *found;
  if (!session->lost_reason.empty()) {
    return ReprefillRequiredError(absl::StrCat("session ", id, ": ", session->lost_reason,
                                               "; open a new session and re-prefill"));
  }
  return session;
}

void SessionTable::Close(SessionRecord* session) {
  if (session->lost_reason.empty()) session->model->ReleaseBlocks(session->blocks);
  sessions_.erase(session->id);
}

int64_t SessionTable::DropLost(ModelState* model, const std::string& reason) {
  const std::vector<uint64_t> placement = model->Placement();
  int64_t dropped = 0;
  for (auto& [id, session] : sessions_) {
    if (session->model != model || !session->lost_reason.empty() ||
        session->placement == placement) {
      continue;
    }
    model->ReleaseBlocks(session->blocks);
    session->blocks.clear();
    session->lost_reason = reason;
    ++dropped;
  }
  model->sessions_lost += dropped;
  return dropped;
}

void SessionTable::CloseExpired(absl::Time now) {
  std::vector<SessionRecord*> expired;
  for (auto& [id, session] : sessions_) {
    if (session->expires_at <= now) expired.push_back(session.get());
  }
  for (SessionRecord* session : expired) Close(session);
}

int64_t SessionTable::CountFor(const ModelState* model) const {
  int64_t count = 0;
  for (const auto& [id, session] : sessions_) {
    count += session->model == model && session->lost_reason.empty() ? 1 : 0;
  }
  return count;
}

}  // namespace kvtier
