// The command-line flags every kvtier binary secures itself with, in one place:
//   --tls_cert_file, --tls_key_file, --tls_ca_file   PEM files (transport_security.h)
//   --token_file (or the KVTIER_TOKEN environment variable)   this process's bearer token
// and, for servers only,
//   --credentials_file          who may call, as what (principals.h); unset: anyone
//   --tls_require_client_cert   mTLS
// Secrets are read from files or the environment, never taken on the command line, where any
// user of the machine can read them (ps).
#ifndef KVTIER_PROTO_WIRE_SECURITY_FLAGS_H_
#define KVTIER_PROTO_WIRE_SECURITY_FLAGS_H_

#include "absl/status/statusor.h"
#include "proto/wire/security_config.h"

namespace kvtier {

// How this process's channels are secured, from the flags; INVALID_ARGUMENT naming the flag for
// a file that cannot be read.
absl::StatusOr<ChannelSecurity> ChannelSecurityFromFlags();

// How this process's server is secured, from the flags (a server binary links these flags
// too); INVALID_ARGUMENT naming the flag.
absl::StatusOr<ServerSecurity> ServerSecurityFromFlags();

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_SECURITY_FLAGS_H_
