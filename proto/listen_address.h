// host:port strings as servers print and advertise them. Pure functions.
#ifndef KVTIER_PROTO_LISTEN_ADDRESS_H_
#define KVTIER_PROTO_LISTEN_ADDRESS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kvtier {

// `address` ("127.0.0.1:0", "[::]:0", "localhost:50051") with its port replaced by `port`.
std::string WithPort(absl::string_view address, int port);

}  // namespace kvtier

#endif  // KVTIER_PROTO_LISTEN_ADDRESS_H_
