// Test support: asks a server what every kvtier server must answer, grpc.health.v1 and
// reflection (grpc.reflection.v1alpha), without those protos' generated code, which Debian's
// gRPC does not ship: the few bytes involved are encoded here by hand.
#ifndef KVTIER_TESTS_SERVER_PROBE_H_
#define KVTIER_TESTS_SERVER_PROBE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvtier::test {

// OK when `address` answers Health/Check for `service` (a full name; empty: the whole server)
// with SERVING; UNAVAILABLE saying what it answered otherwise.
absl::Status CheckServing(const std::string& address, const std::string& service = "");

// CheckServing, polled as a readiness probe would (servers re-read readiness periodically),
// until OK or 10 s have passed; its last answer.
absl::Status WaitServing(const std::string& address, const std::string& service = "");

// The services `address` lists through reflection (ServerReflectionInfo, list_services).
absl::StatusOr<std::vector<std::string>> ListServices(const std::string& address);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVER_PROBE_H_
