// Session: one conversation's handle in a front-end. Extend adds the next step's tokens;
// a Step (step.h) writes their K/V and computes attention layer by layer; EndTurn keeps the
// K/V for the next turn; Close releases it.
//
// The coordinator is called only when it must be: to look a prompt up among the cached
// prefixes and reserve blocks for the rest (when a turn's tokens start at a block boundary),
// to reserve blocks when the next step's tokens outgrow the leased ones (once per block_size
// tokens in decode), to refresh a lease about to expire, and at the end of a turn. Tokens are
// committed to the coordinator only after a step wrote their K/V on every shard.
//
// One client writes a session at a time: the one that opened it, until another resumes it
// (Client::ResumeSession takes it over); the earlier one's calls then fail with ABORTED
// (reason WRITER_SUPERSEDED) or PERMISSION_DENIED, never corrupting what the new writer wrote.
//
// Not thread-safe: one thread at a time.
#ifndef KVTIER_CLIENT_SESSION_H_
#define KVTIER_CLIENT_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvtier/v1/session.pb.h"

namespace kvtier {

class Client;
class Step;

class Session {
 public:
  const std::string& id() const { return info_.session_id(); }
  const std::string& tenant() const { return tenant_; }
  const v1::ModelSpec& model() const { return info_.model(); }
  // Tokens whose K/V the tier holds (written by finished steps).
  int32_t context_len() const { return written_len_; }
  // Tokens added by Extend that the next step will write.
  int32_t pending_tokens() const { return static_cast<int32_t>(pending_.size()); }
  // This turn's tokens (since the session opened, was resumed, or ended its last turn) that
  // were found cached, and that steps computed.
  int32_t turn_cached_tokens() const { return turn_cached_; }
  int32_t turn_computed_tokens() const { return turn_computed_; }

  // Adds tokens (ids >= 0) for the next step. When they start at a block boundary with
  // nothing else pending, the coordinator first looks them up among the cached prefixes: the
  // cached ones (a prefix, in whole blocks, never the last token) join the context at once and
  // are not stepped. Reserves blocks for the rest when the lease is too small. Returns how
  // many of `tokens`, from the first, were cached: the caller computes q/k/v for the others
  // only (pending_tokens). If that step cannot begin or fails, they are dropped: Extend them
  // again to retry.
  absl::StatusOr<int32_t> Extend(absl::Span<const int32_t> tokens);

  // A step over this session alone (Client::BeginStep batches several).
  absl::StatusOr<std::unique_ptr<Step>> BeginStep();

  // Commits what was written and keeps it for `retain_for` (zero: the tier's default).
  // FAILED_PRECONDITION while tokens added by Extend are not stepped yet.
  absl::Status EndTurn(absl::Duration retain_for = absl::ZeroDuration());

  // Commits what steps wrote, when it still can (so its full blocks stay matchable by other
  // sessions until evicted), and releases the session.
  absl::Status Close();

  // A new session, written by this client, that continues from this one's history
  // (context_len tokens): it shares the full blocks and gets its own copy of the partial last
  // one, so both continue independently. Commits what steps wrote first. FAILED_PRECONDITION
  // while tokens added by Extend are not stepped yet.
  absl::StatusOr<std::unique_ptr<Session>> Fork();

 private:
  friend class Client;
  friend class Step;

  // Only a client makes sessions (Client::OpenSession, Client::ResumeSession).
  Session(Client* client, std::string tenant, v1::SessionInfo info, v1::WriterGrant grant);

  // What a step needs: a lease valid for the whole step, covering the pending tokens.
  absl::Status PrepareStep();
  // A finished step wrote the pending tokens.
  void StepWritten();
  // A step that failed or never ran: its tokens are dropped, to be extended again.
  void DropPending() { pending_.clear(); }
  // Asks the coordinator what became of the session after a data-plane failure (GetSession):
  // the re-prefill status if it was lost with a shard, else `failure`.
  absl::Status Explain(const absl::Status& failure);
  // Commits the written tokens (Extend, reserving nothing more).
  absl::Status CommitWritten();
  // A fresh lease from the coordinator (RenewLease), checked against what this client
  // committed.
  absl::Status RenewLease();
  const v1::SessionInfo& info() const { return info_; }
  const v1::BlockLease& lease() const { return grant_.lease(); }

  int32_t leased_tokens() const;
  // An Extend or EndTurn request that commits the written tokens as this session's writer.
  template <typename Request>
  Request CommitRequest() const;

  Client* const client_;
  const std::string tenant_;
  const v1::SessionInfo info_;    // model and shards
  v1::WriterGrant grant_;         // this client's writer id and current lease
  int32_t committed_len_;         // the coordinator's context_len
  int32_t written_len_;           // committed + written_
  std::vector<int32_t> written_;  // written by steps, not yet committed
  std::vector<int32_t> pending_;  // added by Extend, not yet written
  int32_t turn_cached_ = 0;
  int32_t turn_computed_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SESSION_H_
