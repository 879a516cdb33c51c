// Principals: who may call a kvtier server, and as what. A deployment lists its principals in a
// credentials file (--credentials_file; the format below), each a credential, the roles it
// holds and, for front-ends, the tenants it acts for:
//
//   # credential                     roles               tenants
//   sha256:9f86d081884c7d65...        frontend            acme
//   token:gw-7c41...                  frontend            acme,globex   # a gateway
//   sha256:60303ae22b998861...        frontend            *             # any tenant
//   sha256:fd61a03af4f77d87...        shard,coordinator
//   cert:ops.kvtier.internal          admin
//
// A credential is a bearer token, given as its SHA-256 in hex (`sha256:`, so the file holds no
// secret) or in the clear (`token:`), or the common name or a subject alternative name of a
// client certificate the server verified (`cert:`, with mTLS). Roles (the planes they open):
//   frontend     SessionService, for the listed tenants only;
//   shard        ShardRegistryService (registration, heartbeats: the lease key);
//   coordinator  ShardControlService and BlockTransferService on shards (and, between shards,
//                the source side of a block pull);
//   admin        AdminService (models, versions, tenant- and model-wide invalidation).
//
// Immutable once built, so thread-safe.
#ifndef KVTIER_PROTO_WIRE_PRINCIPALS_H_
#define KVTIER_PROTO_WIRE_PRINCIPALS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

enum class Role : uint8_t { kFrontEnd, kShard, kCoordinator, kAdmin };

// "frontend", "shard", "coordinator", "admin".
absl::string_view RoleName(Role role);

struct Principal {
  std::string name;  // for messages and logs: "credentials line 3 (sha256:9f86d081…)"
  std::vector<Role> roles;
  std::vector<std::string> tenants;  // frontend only
  bool any_tenant = false;           // tenants "*"

  bool Has(Role role) const;
  bool ActsFor(absl::string_view tenant) const;
  // "frontend,admin".
  std::string RoleList() const;
};

class Principals {
 public:
  // The credentials file's text (see above); INVALID_ARGUMENT naming the line otherwise (a
  // duplicated credential, an unknown role, tenants on a principal without frontend, ...).
  static absl::StatusOr<Principals> Parse(absl::string_view text);
  static absl::StatusOr<Principals> FromFile(const std::string& path);

  // Adds one holder of `token`; INVALID_ARGUMENT if the token is held already. For a tier that
  // mints its own internal credentials (kvtier-local).
  absl::Status AddToken(absl::string_view token, Principal principal);

  const Principal* ForToken(absl::string_view token) const;
  const Principal* ForCertificateName(absl::string_view name) const;

  size_t size() const { return by_token_hash_.size() + by_certificate_name_.size(); }

 private:
  absl::flat_hash_map<std::string, Principal> by_token_hash_;  // raw SHA-256 bytes
  absl::flat_hash_map<std::string, Principal> by_certificate_name_;
};

// SHA-256 of `token`, 32 raw bytes; in lower-case hex for the file's `sha256:` form.
std::string TokenHash(absl::string_view token);
std::string TokenHashHex(absl::string_view token);

// 32 random bytes as 64 hex characters: a fresh bearer token.
std::string NewToken();

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_PRINCIPALS_H_
