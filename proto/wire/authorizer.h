// Authorizer: the one server-side check of who is calling, made first by every handler of
// every kvtier service but the data plane (whose signed leases are its capability). It finds
// the caller's principal (principals.h) from a bearer token in the call's `authorization`
// metadata ("Bearer <token>"), or else from the verified client certificate of an mTLS
// connection, and checks the role the call needs:
//   UNAUTHENTICATED    no credential, or one this server does not know;
//   PERMISSION_DENIED  a known one without the role, or a front-end acting for a tenant its
//                      credential does not name.
// Both messages name the call and the role it needs. An open authorizer (no credentials file:
// kvtier-local and tests on loopback) lets every call through, the tenant being what the
// request says.
//
// Immutable, so thread-safe.
#ifndef KVTIER_PROTO_WIRE_AUTHORIZER_H_
#define KVTIER_PROTO_WIRE_AUTHORIZER_H_

#include <initializer_list>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "proto/wire/principals.h"

namespace kvtier {

class Authorizer {
 public:
  Authorizer() = default;  // open
  explicit Authorizer(std::shared_ptr<const Principals> principals)
      : principals_(std::move(principals)) {}

  bool open() const { return principals_ == nullptr; }

  // OK when the caller holds one of `roles`; `rpc` names the call in the message.
  absl::Status Require(const grpc::ServerContextBase& context, std::initializer_list<Role> roles,
                       absl::string_view rpc) const;
  // OK when the caller is a front-end acting for `tenant` (the request's tenant, which then
  // names the session's prefix-cache namespace).
  absl::Status RequireTenant(const grpc::ServerContextBase& context, absl::string_view tenant,
                             absl::string_view rpc) const;

 private:
  // The caller's principal; UNAUTHENTICATED (needing `roles`) without one.
  absl::StatusOr<const Principal*> Authenticate(const grpc::ServerContextBase& context,
                                                std::initializer_list<Role> roles,
                                                absl::string_view rpc) const;
  // Authenticate, and PERMISSION_DENIED unless the principal holds one of `roles`.
  absl::StatusOr<const Principal*> Check(const grpc::ServerContextBase& context,
                                         std::initializer_list<Role> roles,
                                         absl::string_view rpc) const;

  std::shared_ptr<const Principals> principals_;
};

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_AUTHORIZER_H_
