// SessionTable: the sessions of every model: who owns them (tenant and namespace), their
// committed token history, their block table, how much of it is cached (matchable by other
// sessions), the placement (slot incarnations) their K/V was written on, and their deadline.
//
// A session is
//   active    its writer is working on it; closed when idle past its idle deadline;
//   retained  its turn ended with a retention (EndTurn): soft-pinned until the retention
//             deadline, then it ends; under memory pressure retained sessions are evicted,
//             the oldest deadline first;
//   lost      its K/V went with a shard, was evicted while retained, or was invalidated: a
//             tombstone until its deadline, whose calls answer FAILED_PRECONDITION with reason
//             REPREFILL_REQUIRED (or INVALIDATED) rather than NOT_FOUND.
// Deadlines live in two queues (active by idle deadline, retained by retention deadline), so
// expiry and eviction never scan every session.
//
// Session ids are 128 random bits from the system's cryptographic source, hex-encoded: a
// session can be resumed by whoever knows its id and tenant, and by no one else.
//
// Thread-compatible: the Coordinator's lock guards it.
#ifndef KVTIER_SERVICE_SESSION_TABLE_H_
#define KVTIER_SERVICE_SESSION_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/blocks/block_id.h"
#include "cache/blocks/prefix_index.h"
#include "kvtier/v1/errors.pb.h"
#include "service/model_table.h"

namespace kvtier {

struct SessionRecord {
  enum class State { kActive, kRetained, kLost };

  std::string id;
  std::string tenant;
  ModelState* model = nullptr;  // null for a tombstone whose model version is gone
  NamespaceId ns = 0;           // where its full blocks are cached and matched
  std::vector<int32_t> tokens;  // the committed history; its K/V is in `blocks`
  std::vector<BlockId> blocks;
  // The leading blocks that are cached, a chain other sessions may match. Blocks past it stay
  // private: a block whose content was cached already in another block ends the chain.
  int32_t cached_blocks = 0;
  bool chain_ended = false;
  std::vector<uint64_t> placement;  // the model's slot incarnations when the session opened
  uint64_t writer = 0;              // the one client allowed to write: random, renewed on take-over
  uint64_t writer_epoch = 1;        // raised on take-over; shards refuse leases of lower epochs
  State state = State::kActive;
  absl::Time deadline;      // idle (active), retention (retained) or tombstone (lost)
  std::string lost_reason;  // lost: why
  v1::ErrorReason lost_code = v1::ERROR_REASON_REPREFILL_REQUIRED;  // lost: the reason code

  int32_t context_len() const { return static_cast<int32_t>(tokens.size()); }
  int32_t capacity_tokens() const {
    return static_cast<int32_t>(blocks.size()) * model->spec.block_size();
  }
  // The history is a chain of cached blocks: what follows it may be matched.
  bool MatchableHistory() const {
    return !chain_ended && int64_t{cached_blocks} * model->spec.block_size() == context_len();
  }
};

class SessionTable {
 public:
  // A new active session, idle past `deadline`.
  SessionRecord* Open(ModelState* model, const std::string& tenant, NamespaceId ns,
                      absl::Time deadline);
  // A new active session with `source`'s tenant, model, namespace, placement and committed
  // history, and no blocks yet (the caller gives it its share of them).
  SessionRecord* Fork(const SessionRecord& source, absl::Time deadline);

  // Hands the session to a new writer: a fresh writer id and a higher writer epoch, so the
  // previous writer's leases stop working on the shards (without touching the generations of
  // blocks other sessions may share).
  void TakeOver(SessionRecord* session);

  // NOT_FOUND for an unknown id or another tenant's session (indistinguishable on purpose).
  absl::StatusOr<SessionRecord*> Lookup(const std::string& id, const std::string& tenant);

  // As Lookup, and FAILED_PRECONDITION with the tombstone's reason for a lost session.
  absl::StatusOr<SessionRecord*> Find(const std::string& id, const std::string& tenant);

  // Makes the session active (again), idle past at least `deadline`.
  void Activate(SessionRecord* session, absl::Time deadline);
  // Soft-pins the session until `deadline`.
  void Retain(SessionRecord* session, absl::Time deadline);
  // Releases the session's blocks (full cached ones stay matchable) and makes it a tombstone
  // saying `reason`, with reason code `code`, kept until `deadline`.
  void MarkLost(SessionRecord* session, const std::string& reason, absl::Time deadline,
                v1::ErrorReason code = v1::ERROR_REASON_REPREFILL_REQUIRED);

  // Releases the session's blocks (full cached ones stay matchable) and forgets it.
  void Close(SessionRecord* session);

  // Marks every session of `model` whose placement no longer matches the model's as lost,
  // until its deadline. Returns how many. Scans the sessions: only on the rare loss of a shard.
  int64_t DropLost(ModelState* model, const std::string& reason);

  // The live (active and retained) sessions for which `match` holds. Scans every session: for
  // invalidation, which is rare.
  std::vector<SessionRecord*> Live(absl::FunctionRef<bool(const SessionRecord&)> match) const;

  // Detaches the tombstones of `model`, whose version is being removed (it has no live
  // sessions left).
  void ForgetModel(const ModelState* model);

  // Retained sessions, the oldest deadline first.
  std::vector<SessionRecord*> RetainedOldestFirst() const;

  // Sessions whose deadline is at or before `now`: active ones past their idle time, retained
  // ones past their retention, tombstones past their time.
  std::vector<SessionRecord*> Expired(absl::Time now) const;

 private:
  using Queue = absl::btree_set<std::pair<absl::Time, SessionRecord*>>;

  Queue& QueueOf(const SessionRecord& session);
  void Dequeue(SessionRecord* session);
  void Enqueue(SessionRecord* session, SessionRecord::State state, absl::Time deadline);

  absl::flat_hash_map<std::string, std::unique_ptr<SessionRecord>> sessions_;
  Queue active_;    // by idle deadline
  Queue retained_;  // by retention deadline
  Queue lost_;      // by tombstone deadline
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_SESSION_TABLE_H_
