// Test support: asks a server's grpc.health.v1 service whether it is SERVING, without the
// health proto's generated code (the request is empty on the wire; SERVING is field 1 = 1).
#ifndef KVTIER_TESTS_HEALTH_PROBE_H_
#define KVTIER_TESTS_HEALTH_PROBE_H_

#include <string>

#include "absl/status/status.h"

namespace kvtier::test {

// OK when `address` answers Health/Check for the whole server with SERVING.
absl::Status CheckServing(const std::string& address);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_HEALTH_PROBE_H_
