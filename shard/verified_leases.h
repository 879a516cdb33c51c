// VerifiedLeases: the leases whose signatures this shard has checked, kept by signature until
// they expire, so a session's lease costs one HMAC per shard, not one per step. A lease is
// taken as verified only when its signature, every signed field (LeaseSignedBytes) and the
// lease key all equal those of a lease verified before; anything else is checked by HMAC.
// Only the signature is cached: generations, writer epochs and revocations are checked on
// every step by HostedModel, so revoking a lease whose signature is cached takes effect at once.
//
// Memory is bounded: past `capacity` entries the expired ones are dropped, and if that is not
// enough, all of them (they are re-verified on their next step).
//
// Thread-safe: mu_ guards the entries.
#ifndef KVTIER_SHARD_VERIFIED_LEASES_H_
#define KVTIER_SHARD_VERIFIED_LEASES_H_

#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class VerifiedLeases {
 public:
  explicit VerifiedLeases(size_t capacity = 4096) : capacity_(capacity) {}

  VerifiedLeases(const VerifiedLeases&) = delete;
  VerifiedLeases& operator=(const VerifiedLeases&) = delete;

  // True when `lease` carries a valid signature under `key`: from the cache when this very
  // lease was verified under `key` before and has not expired at `now`, else by HMAC (a valid
  // one is then cached until its expiry).
  bool Verify(absl::string_view key, const v1::BlockLease& lease, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

  // HMAC checks done so far (the tests count them).
  int64_t hmac_checks() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string key;
    std::string signed_bytes;
    absl::Time expires_at;
  };

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by signature
  int64_t hmac_checks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_VERIFIED_LEASES_H_
