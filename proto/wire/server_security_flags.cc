// The server-only flags of ServerSecurityFromFlags (security_flags.h), linked by kvtier's
// server binaries.
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/security_flags.h"
#include "proto/wire/transport_security.h"

ABSL_FLAG(std::string, credentials_file, "",
          "who may call this server, as what: one principal a line (README: Security); unset: "
          "every call is allowed, the tenant being what the request says");
ABSL_FLAG(bool, tls_require_client_cert, false,
          "mTLS: refuse clients without a certificate --tls_ca_file verifies");

namespace kvtier {

absl::StatusOr<ServerSecurity> ServerSecurityFromFlags() {
  absl::StatusOr<ChannelSecurity> channel = ChannelSecurityFromFlags();
  if (!channel.ok()) return channel.status();
  ServerSecurity security{.tls = std::move(channel->tls),
                          .require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert),
                          .principals = nullptr};
  if (const std::string path = absl::GetFlag(FLAGS_credentials_file); !path.empty()) {
    absl::StatusOr<Principals> principals = Principals::FromFile(path);
    if (!principals.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("credentials_file: ", principals.status().message()));
    }
    security.principals = std::make_shared<const Principals>(*std::move(principals));
  }
  if (absl::Status status = CheckServerSecurity(security); !status.ok()) return status;
  return security;
}

}  // namespace kvtier
