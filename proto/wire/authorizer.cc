#include "proto/wire/authorizer.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/security/auth_context.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// "a frontend credential", "an admin credential", "a coordinator or shard credential".
std::string Needed(std::initializer_list<Role> roles) {
  return absl::StrCat(
      *roles.begin() == Role::kAdmin ? "an " : "a ",
      absl::StrJoin(roles, " or ",
                    [](std::string* out, Role role) { absl::StrAppend(out, RoleName(role)); }),
      " credential");
}

absl::string_view View(const grpc::string_ref& ref) { return {ref.data(), ref.size()}; }

}  // namespace

absl::StatusOr<const Principal*> Authorizer::Authenticate(const grpc::ServerContextBase& context,
                                                          std::initializer_list<Role> roles,
                                                          absl::string_view rpc) const {
  const auto refuse = [&](absl::string_view why) {
    return absl::UnauthenticatedError(absl::StrCat(rpc, " needs ", Needed(roles), ": ", why));
  };
  const auto& metadata = context.client_metadata();
  if (auto header = metadata.find("authorization"); header != metadata.end()) {
    absl::string_view value = View(header->second);
    if (!absl::StartsWith(value, kBearer)) {
      return refuse("the authorization metadata is not \"Bearer <token>\"");
    }
    value.remove_prefix(kBearer.size());
    if (const Principal* principal = principals_->ForToken(value)) return principal;
    return refuse("the bearer token is not one this server knows");
  }
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
      for (const grpc::string_ref& name : auth->FindPropertyValues(property)) {
        if (const Principal* principal = principals_->ForCertificateName(View(name))) {
          return principal;
        }
      }
    }
    return refuse("the client certificate names no principal this server knows");
  }
  return refuse(
      "the call has none (a bearer token in the authorization metadata, or a verified client "
      "certificate)");
}

absl::StatusOr<const Principal*> Authorizer::Check(const grpc::ServerContextBase& context,
                                                   std::initializer_list<Role> roles,
                                                   absl::string_view rpc) const {
  absl::StatusOr<const Principal*> principal = Authenticate(context, roles, rpc);
  if (!principal.ok()) return principal;
  for (Role role : roles) {
    if ((*principal)->Has(role)) return principal;
  }
  return absl::PermissionDeniedError(absl::StrCat(rpc, " needs ", Needed(roles), ": ",
                                                  (*principal)->name, " holds ",
                                                  (*principal)->RoleList()));
}

absl::Status Authorizer::Require(const grpc::ServerContextBase& context,
                                 std::initializer_list<Role> roles, absl::string_view rpc) const {
  if (open()) return absl::OkStatus();
  return Check(context, roles, rpc).status();
}

absl::Status Authorizer::RequireTenant(const grpc::ServerContextBase& context,
                                       absl::string_view tenant, absl::string_view rpc) const {
  if (open()) return absl::OkStatus();
  absl::StatusOr<const Principal*> principal = Check(context, {Role::kFrontEnd}, rpc);
  if (!principal.ok()) return principal.status();
  if ((*principal)->ActsFor(tenant)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      rpc, ": tenant ", QuotedPrefix(tenant), ": ", (*principal)->name, " acts for tenants ",
      QuotedPrefix(absl::StrJoin((*principal)->tenants, ",")), " only"));
}

}  // namespace kvtier
