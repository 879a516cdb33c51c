// The flags of ChannelSecurityFromFlags (security_flags.h), linked by every kvtier binary that
// makes calls.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/security_flags.h"
#include "proto/wire/transport_security.h"

ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of this process: its server's, and its client certificate for "
          "mTLS; set: TLS");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM roots that verify peers (the servers this process calls; for a server, its "
          "clients' certificates); set: TLS");
ABSL_FLAG(std::string, token_file, "",
          "file holding this process's bearer token, sent on every call (default: the "
          "KVTIER_TOKEN environment variable; neither: no token)");

namespace kvtier {
namespace {

absl::StatusOr<std::string> ReadToken() {
  const std::string path = absl::GetFlag(FLAGS_token_file);
  if (path.empty()) {
    const char* token = std::getenv("KVTIER_TOKEN");
    return std::string(token == nullptr ? "" : absl::StripAsciiWhitespace(token));
  }
  std::ifstream file(path);
  if (!file) return absl::InvalidArgumentError(absl::StrCat("token_file: cannot read ", path));
  std::stringstream text;
  text << file.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat("token_file: ", path, " is empty"));
  return token;
}

}  // namespace

absl::StatusOr<ChannelSecurity> ChannelSecurityFromFlags() {
  absl::StatusOr<TlsCredentials> tls =
      ReadTlsFiles({absl::GetFlag(FLAGS_tls_cert_file), absl::GetFlag(FLAGS_tls_key_file),
                    absl::GetFlag(FLAGS_tls_ca_file)});
  if (!tls.ok()) return tls.status();
  absl::StatusOr<std::string> token = ReadToken();
  if (!token.ok()) return token.status();
  return ChannelSecurity{*std::move(tls), *std::move(token)};
}

}  // namespace kvtier
