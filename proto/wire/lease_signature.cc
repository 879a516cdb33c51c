#include "proto/wire/lease_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdint>
#include <cstdlib>

#include "absl/base/internal/endian.h"

namespace kvtier {
namespace {

void AppendU64(uint64_t value, std::string* out) {
  char bytes[8];
  absl::little_endian::Store64(bytes, value);
  out->append(bytes, sizeof(bytes));
}

// Strings are length-prefixed and lists are count-prefixed, so no two leases encode alike.
void AppendString(absl::string_view value, std::string* out) {
  AppendU64(value.size(), out);
  out->append(value.data(), value.size());
}

std::string Mac(absl::string_view key, const v1::BlockLease& lease) {
  const std::string message = LeaseSignedBytes(lease);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

}  // namespace

std::string LeaseSignedBytes(const v1::BlockLease& lease) {
  std::string message;
  AppendString(lease.session_id(), &message);
  AppendString(lease.model().name(), &message);
  AppendString(lease.model().version(), &message);
  AppendU64(lease.blocks_size(), &message);
  for (int32_t block : lease.blocks()) AppendU64(static_cast<uint32_t>(block), &message);
  AppendU64(lease.generations_size(), &message);
  for (uint64_t generation : lease.generations()) AppendU64(generation, &message);
  AppendU64(lease.shard_incarnations_size(), &message);
  for (uint64_t incarnation : lease.shard_incarnations()) AppendU64(incarnation, &message);
  AppendU64(lease.writer_epoch(), &message);
  AppendU64(static_cast<uint32_t>(lease.writable_from()), &message);
  AppendU64(static_cast<uint64_t>(lease.expires_at().seconds()), &message);
  AppendU64(static_cast<uint32_t>(lease.expires_at().nanos()), &message);
  return message;
}

std::string NewLeaseKey() {
  std::string key(32, '\0');
  // NOTE: without entropy nothing the tier grants can be trusted; there is no sane fallback.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), key.size()) != 1) std::abort();
  return key;
}

void SignLease(absl::string_view key, v1::BlockLease* lease) {
  lease->set_signature(Mac(key, *lease));
}

bool LeaseSignatureValid(absl::string_view key, const v1::BlockLease& lease) {
  const std::string expected = Mac(key, lease);
  return lease.signature().size() == expected.size() &&
         CRYPTO_memcmp(expected.data(), lease.signature().data(), expected.size()) == 0;
}

}  // namespace kvtier
