#include "shard/verified_leases.h"

#include "proto/wire/lease_signature.h"
#include "proto/wire/time_convert.h"

namespace kvtier {

bool VerifiedLeases::Verify(absl::string_view key, const v1::BlockLease& lease, absl::Time now) {
  std::string signed_bytes = LeaseSignedBytes(lease);
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(lease.signature());
    if (it != entries_.end() && it->second.expires_at >= now && it->second.key == key &&
        it->second.signed_bytes == signed_bytes) {
      return true;
    }
    ++hmac_checks_;
  }
  // NOTE: the HMAC runs outside the lock, so steps of other sessions do not wait on it.
  if (!LeaseSignatureValid(key, lease)) return false;
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= capacity_) {
    absl::erase_if(entries_, [now](const auto& entry) { return entry.second.expires_at < now; });
    if (entries_.size() >= capacity_) entries_.clear();
  }
  entries_.insert_or_assign(lease.signature(),
                            Entry{.key = std::string(key),
                                  .signed_bytes = std::move(signed_bytes),
                                  .expires_at = FromProtoTimestamp(lease.expires_at())});
  return true;
}

int64_t VerifiedLeases::hmac_checks() const {
  absl::MutexLock lock(&mu_);
  return hmac_checks_;
}

}  // namespace kvtier
