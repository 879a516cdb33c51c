#include "proto/wire/principals.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {
namespace {

constexpr std::array<Role, 4> kRoles = {Role::kFrontEnd, Role::kShard, Role::kCoordinator,
                                        Role::kAdmin};

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : kRoles) {
    if (RoleName(role) == name) return role;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown role ", QuotedPrefix(name),
                                                 " (roles: frontend, shard, coordinator, admin)"));
}

// The principal of one line's columns after the credential.
absl::StatusOr<Principal> ParsePrincipal(absl::Span<const absl::string_view> columns) {
  Principal principal;
  for (absl::string_view name : absl::StrSplit(columns[0], ',')) {
    absl::StatusOr<Role> role = ParseRole(name);
    if (!role.ok()) return role.status();
    if (principal.Has(*role)) {
      return absl::InvalidArgumentError(absl::StrCat("role ", name, " listed twice"));
    }
    principal.roles.push_back(*role);
  }
  if (columns.size() == 1) {
    if (principal.Has(Role::kFrontEnd)) {
      return absl::InvalidArgumentError(
          "a frontend needs its tenants (a third column: tenant,tenant,... or *)");
    }
    return principal;
  }
  if (!principal.Has(Role::kFrontEnd)) {
    return absl::InvalidArgumentError("tenants are for a frontend only");
  }
  if (columns[1] == "*") {
    principal.any_tenant = true;
    return principal;
  }
  for (absl::string_view tenant : absl::StrSplit(columns[1], ',')) {
    if (tenant.empty() || tenant.size() > 128 || tenant == "*") {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant ", QuotedPrefix(tenant), ": expected 1..128 bytes, or * alone"));
    }
    principal.tenants.emplace_back(tenant);
  }
  return principal;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kFrontEnd:
      return "frontend";
    case Role::kShard:
      return "shard";
    case Role::kCoordinator:
      return "coordinator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

bool Principal::Has(Role role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

bool Principal::ActsFor(absl::string_view tenant) const {
  return Has(Role::kFrontEnd) &&
         (any_tenant || std::find(tenants.begin(), tenants.end(), tenant) != tenants.end());
}

std::string Principal::RoleList() const {
  return absl::StrJoin(roles, ",",
                       [](std::string* out, Role role) { absl::StrAppend(out, RoleName(role)); });
}

absl::StatusOr<Principals> Principals::Parse(absl::string_view text) {
  Principals principals;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    const std::vector<absl::string_view> columns =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (columns.empty()) continue;
    const auto failure = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("credentials line ", line_number, ": ", why));
    };
    if (columns.size() < 2 || columns.size() > 3) {
      return failure("expected: credential roles [tenants]");
    }
    absl::StatusOr<Principal> principal = ParsePrincipal(absl::MakeConstSpan(columns).subspan(1));
    if (!principal.ok()) return failure(principal.status().message());
    absl::string_view credential = columns[0];
    principal->name = absl::StrCat("credentials line ", line_number, " (",
                                   credential.substr(0, std::min<size_t>(credential.size(), 15)),
                                   credential.size() > 15 ? "…" : "", ")");
    if (absl::ConsumePrefix(&credential, "cert:")) {
      if (credential.empty()) return failure("cert: needs a certificate name");
      if (!principals.by_certificate_name_.emplace(credential, *std::move(principal)).second) {
        return failure("this certificate name is listed already");
      }
      continue;
    }
    std::string hash;
    if (absl::ConsumePrefix(&credential, "sha256:")) {
      if (credential.size() != 64 ||
          !std::all_of(credential.begin(), credential.end(), absl::ascii_isxdigit)) {
        return failure("sha256: needs 64 hex digits (sha256sum of the token)");
      }
      hash = absl::HexStringToBytes(absl::AsciiStrToLower(credential));
    } else if (absl::ConsumePrefix(&credential, "token:")) {
      if (credential.empty()) return failure("token: needs a token");
      hash = TokenHash(credential);
    } else {
      return failure("a credential starts with sha256:, token: or cert:");
    }
    if (!principals.by_token_hash_.emplace(std::move(hash), *std::move(principal)).second) {
      return failure("this token is listed already");
    }
  }
  return principals;
}

absl::StatusOr<Principals> Principals::FromFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("credentials file ", path, ": cannot be read"));
  }
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<Principals> principals = Parse(text.str());
  if (!principals.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", principals.status().message()));
  }
  return principals;
}

absl::Status Principals::AddToken(absl::string_view token, Principal principal) {
  if (!by_token_hash_.emplace(TokenHash(token), std::move(principal)).second) {
    return absl::InvalidArgumentError("token: held by another principal already");
  }
  return absl::OkStatus();
}

const Principal* Principals::ForToken(absl::string_view token) const {
  auto found = by_token_hash_.find(TokenHash(token));
  return found == by_token_hash_.end() ? nullptr : &found->second;
}

const Principal* Principals::ForCertificateName(absl::string_view name) const {
  auto found = by_certificate_name_.find(name);
  return found == by_certificate_name_.end() ? nullptr : &found->second;
}

std::string TokenHash(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string TokenHashHex(absl::string_view token) {
  return absl::BytesToHexString(TokenHash(token));
}

std::string NewToken() { return absl::BytesToHexString(NewLeaseKey()); }

}  // namespace kvtier
