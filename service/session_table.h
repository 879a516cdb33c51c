// SessionTable: the live sessions of every model: who owns them (tenant), their token history,
// their block table, and the placement (slot incarnations) their K/V was written on.
//
// Session ids are 128 random bits from the system's cryptographic source, hex-encoded: a
// session can be resumed by whoever knows its id and tenant, and by no one else. A session
// whose K/V went with a shard is kept as a tombstone until it expires, so its calls answer
// FAILED_PRECONDITION with reason REPREFILL_REQUIRED rather than NOT_FOUND.
//
// Thread-compatible: the Coordinator's lock guards it.
#ifndef KVTIER_SERVICE_SESSION_TABLE_H_
#define KVTIER_SERVICE_SESSION_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/blocks/block_allocator.h"
#include "service/model_table.h"

namespace kvtier {

struct SessionRecord {
  std::string id;
  std::string tenant;
  ModelState* model = nullptr;
  std::vector<int32_t> tokens;  // the committed history; its K/V is in `blocks`
  std::vector<BlockId> blocks;
  std::vector<uint64_t> placement;  // the model's slot incarnations when the session opened
  uint64_t writer = 0;              // the one client allowed to write: random, renewed on take-over
  uint64_t writer_epoch = 1;        // raised on take-over; shards refuse leases of lower epochs
  absl::Time expires_at;            // idle or retention deadline
  std::string lost_reason;          // non-empty: K/V lost, blocks released

  int32_t context_len() const { return static_cast<int32_t>(tokens.size()); }
  int32_t capacity_tokens() const {
    return static_cast<int32_t>(blocks.size()) * model->spec.block_size();
  }
};

class SessionTable {
 public:
  SessionRecord* Open(ModelState* model, const std::string& tenant, absl::Time expires_at);

  // Hands the session to a new writer: a fresh writer id and a higher writer epoch, so the
  // previous writer's leases stop working on the shards (without touching the generations of
  // blocks other sessions may share).
  void TakeOver(SessionRecord* session);

  // NOT_FOUND for an unknown id or another tenant's session (indistinguishable on purpose).
  absl::StatusOr<SessionRecord*> Lookup(const std::string& id, const std::string& tenant);

  // As Lookup, and FAILED_PRECONDITION (REPREFILL_REQUIRED) for a lost session.
  absl::StatusOr<SessionRecord*> Find(const std::string& id, const std::string& tenant);

  // Releases the session's blocks and forgets it.
  void Close(SessionRecord* session);

  // Marks every session of `model` whose placement no longer matches the model's as lost,
  // releasing its blocks. Returns how many.
  int64_t DropLost(ModelState* model, const std::string& reason);

  // Closes every session whose deadline has passed.
  void CloseExpired(absl::Time now);

  int64_t CountFor(const ModelState* model) const;

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<SessionRecord>> sessions_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_SESSION_TABLE_H_
