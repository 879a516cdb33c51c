// How kvtier's servers and channels are secured (security_config.h) in gRPC terms: TLS from
// PEM text (mTLS when a server asks for client certificates) and a bearer token sent on every
// call of a channel. Every server (StartServer) and every channel (OpenChannel) of kvtier goes
// through here, so a process secures all its planes, in and out, with one ServerSecurity and
// one ChannelSecurity.
//
// Pure functions and immutable values, so thread-safe.
#ifndef KVTIER_PROTO_WIRE_TRANSPORT_SECURITY_H_
#define KVTIER_PROTO_WIRE_TRANSPORT_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/wire/security_config.h"

namespace kvtier {

// Reads `files`; INVALID_ARGUMENT naming the flag (tls_cert_file, tls_key_file, tls_ca_file)
// for a file that cannot be read, holds no PEM block, or a certificate without its key.
absl::StatusOr<TlsCredentials> ReadTlsFiles(const TlsFiles& files);

// INVALID_ARGUMENT for a server that asks what it cannot do (a client certificate required
// without roots to verify it, TLS without a key).
absl::Status CheckServerSecurity(const ServerSecurity& security);

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const ServerSecurity& security);

// A channel to `target` secured by `security`, with `args`.
std::shared_ptr<grpc::Channel> OpenChannel(const std::string& target,
                                           const ChannelSecurity& security,
                                           const grpc::ChannelArguments& args = {});

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_TRANSPORT_SECURITY_H_
