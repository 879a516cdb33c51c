// host:port strings as servers listen on, print and advertise them. Pure functions.
#ifndef KVTIER_PROTO_WIRE_LISTEN_ADDRESS_H_
#define KVTIER_PROTO_WIRE_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

struct HostPort {
  std::string host;  // empty: any host
  int port = 0;      // 0: any free port
};

// "host:port", "[v6]:port" or ":port"; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view field, absl::string_view address);

// The host a client can reach a listener on `host` at: the machine's name for a wildcard
// ("", "0.0.0.0", "[::]"), else `host` itself.
std::string ReachableHost(const std::string& host);

// `address` (already parsed as host:port) with its port replaced by `port`.
std::string WithPort(absl::string_view address, int port);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_LISTEN_ADDRESS_H_
