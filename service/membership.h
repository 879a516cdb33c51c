// Membership: the shard workers that have joined the tier, with their capacity and the time
// each was last heard from. Which head ranges a shard holds is recorded in the models' slots
// (model_table.h); this table only knows the shards.
//
// Thread-compatible: the Coordinator's lock guards it.
#ifndef KVTIER_SERVICE_MEMBERSHIP_H_
#define KVTIER_SERVICE_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace kvtier {

struct ShardMember {
  uint64_t id = 0;
  std::string address;
  int64_t capacity_bytes = 0;
  int64_t committed_bytes = 0;  // pools of the slots assigned to it
  absl::Time last_heard;
  // Non-empty while vacant slots remain that it could take but has no room for: why, with the
  // numbers (logged when it changes, and sent in its assignment).
  std::string no_room_reason;
};

class Membership {
 public:
  // A new member with a fresh id (never 0, never reused).
  ShardMember* Add(const std::string& address, int64_t capacity_bytes, absl::Time now);

  // Null when unknown.
  ShardMember* Find(uint64_t id);
  ShardMember* FindByAddress(const std::string& address);

  void Remove(uint64_t id);

  // Members not heard from since `deadline`.
  std::vector<uint64_t> SilentSince(absl::Time deadline) const;

  // In join order.
  std::vector<ShardMember*> All();

  int size() const { return static_cast<int>(members_.size()); }

 private:
  uint64_t next_id_ = 1;
  std::map<uint64_t, ShardMember> members_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_MEMBERSHIP_H_
