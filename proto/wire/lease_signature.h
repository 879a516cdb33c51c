// Signatures on BlockLease: the coordinator signs each lease it grants with a key it shares
// with its shards at registration, and shards verify before touching a block (DESIGN
// invariant 3). HMAC-SHA256 over a fixed little-endian encoding of every field but the
// signature, so the check does not depend on protobuf's serialization. Pure functions.
#ifndef KVTIER_PROTO_WIRE_LEASE_SIGNATURE_H_
#define KVTIER_PROTO_WIRE_LEASE_SIGNATURE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// 32 bytes from the system's cryptographic random source.
std::string NewLeaseKey();

// Sets lease->signature().
void SignLease(absl::string_view key, v1::BlockLease* lease);

// True when the signature matches the other fields (compared in constant time).
bool LeaseSignatureValid(absl::string_view key, const v1::BlockLease& lease);

// The encoding of every field but the signature that the signature is computed over: two
// leases with equal encodings and signatures are the same grant.
std::string LeaseSignedBytes(const v1::BlockLease& lease);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_LEASE_SIGNATURE_H_
