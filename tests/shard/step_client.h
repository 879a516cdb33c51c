// The test side of a shard's data plane: a client that sends Step streams and collects what
// comes back, and signed leases. Not thread-safe beyond what a gRPC stub is.
#ifndef KVTIER_TESTS_SHARD_STEP_CLIENT_H_
#define KVTIER_TESTS_SHARD_STEP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

struct StepOutcome {
  grpc::Status status;
  std::vector<v1::StepResponse> responses;
};

class StepClient {
 public:
  explicit StepClient(const std::string& address);

  // Sends `requests` on one Step stream, reading one response after each request that carries
  // a layer, until the stream fails; then half-closes and returns the status.
  StepOutcome Send(const std::vector<v1::StepRequest>& requests);

  v1::AttentionService::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<v1::AttentionService::Stub> stub_;
};

// The requests of a well-formed step: the plan in the first, one layer in each.
std::vector<v1::StepRequest> StepRequests(const v1::StepPlan& plan,
                                          const std::vector<v1::LayerTensors>& layers);

// A lease over `blocks` (each at `generation`) for `model`, valid for a minute, signed with
// `key`.
v1::BlockLease SignedLease(const std::string& key, const v1::ModelId& model,
                           const std::vector<int32_t>& blocks,
                           const std::vector<uint64_t>& shard_incarnations,
                           uint64_t generation = 1);

// A deadline a few seconds out, for every test call.
std::chrono::system_clock::time_point TestDeadline();

}  // namespace kvtier

#endif  // KVTIER_TESTS_SHARD_STEP_CLIENT_H_
