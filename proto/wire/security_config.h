// What secures a kvtier process's server and its channels: TLS material, the principals a
// server admits (principals.h) and the bearer token a channel presents. Plain values, free of
// gRPC, so the client library's public headers can carry them; transport_security.h turns them
// into gRPC credentials.
//
// A token without TLS crosses the network in the clear: use that only on loopback or a network
// you trust.
#ifndef KVTIER_PROTO_WIRE_SECURITY_CONFIG_H_
#define KVTIER_PROTO_WIRE_SECURITY_CONFIG_H_

#include <memory>
#include <string>

#include "proto/wire/principals.h"

namespace kvtier {

// Where a process's PEM files are; empty: none.
struct TlsFiles {
  std::string cert_file;  // this process's certificate chain: as a server, and as an mTLS client
  std::string key_file;   // its private key
  std::string ca_file;    // roots that verify peers: the server's, and clients' certificates
};

// The files' PEM text. TLS is on for a server with a certificate, and for a channel with any
// of them (a channel with no roots verifies against the system's).
struct TlsCredentials {
  std::string cert_chain;
  std::string private_key;
  std::string root_certs;

  bool any() const { return !cert_chain.empty() || !private_key.empty() || !root_certs.empty(); }
};

struct ServerSecurity {
  TlsCredentials tls;                // no certificate: plaintext
  bool require_client_cert = false;  // mTLS: refuse a client without a certificate tls.root_certs
                                     // verifies (a certificate that is sent is always verified)
  std::shared_ptr<const Principals> principals;  // null: every call allowed (authorizer.h)
};

struct ChannelSecurity {
  TlsCredentials tls;  // none: plaintext
  std::string token;   // sent as "authorization: Bearer <token>" on every call; empty: none
};

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_SECURITY_CONFIG_H_
