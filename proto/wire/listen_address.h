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

// An address others can dial, as a server advertises it: "host:port" with a host name (at most
// 253 characters) or IPv4 address, or "[v6]:port"; the port 1..65535. INVALID_ARGUMENT naming
// `field` otherwise (a wildcard or empty host, port 0, an IPv6 address without brackets).
absl::StatusOr<HostPort> ParseAdvertisedAddress(absl::string_view field, absl::string_view address);

// The host a client can reach a listener on `host` at: the machine's name for a wildcard
// ("", "0.0.0.0", "[::]"), else `host` itself.
std::string ReachableHost(const std::string& host);

// `address` (already parsed as host:port) with its port replaced by `port`.
std::string WithPort(absl::string_view address, int port);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_LISTEN_ADDRESS_H_
