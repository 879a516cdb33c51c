#include "tests/shard/step_client.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/time_convert.h"

namespace kvtier {

StepClient::StepClient(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  stub_ = v1::AttentionService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

StepOutcome StepClient::Send(const std::vector<v1::StepRequest>& requests) {
  grpc::ClientContext context;
  context.set_deadline(TestDeadline());
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream =
      stub_->Step(&context);
  StepOutcome outcome;
  for (const v1::StepRequest& request : requests) {
    if (!stream->Write(request)) break;
    if (!request.has_layer()) continue;
    v1::StepResponse response;
    if (!stream->Read(&response)) break;
    outcome.responses.push_back(std::move(response));
  }
  stream->WritesDone();
  v1::StepResponse unexpected;
  while (stream->Read(&unexpected)) outcome.responses.push_back(std::move(unexpected));
  outcome.status = stream->Finish();
  return outcome;
}

std::vector<v1::StepRequest> StepRequests(const v1::StepPlan& plan,
                                          const std::vector<v1::LayerTensors>& layers) {
  std::vector<v1::StepRequest> requests(std::max<size_t>(layers.size(), 1));
  *requests[0].mutable_plan() = plan;
  for (size_t i = 0; i < layers.size(); ++i) *requests[i].mutable_layer() = layers[i];
  return requests;
}

v1::BlockLease SignedLease(const std::string& key, const v1::ModelId& model,
                           const std::vector<int32_t>& blocks,
                           const std::vector<uint64_t>& shard_incarnations, uint64_t generation) {
  v1::BlockLease lease;
  lease.set_session_id("session");
  *lease.mutable_model() = model;
  for (int32_t block : blocks) {
    lease.add_blocks(block);
    lease.add_generations(generation);
  }
  for (uint64_t incarnation : shard_incarnations) lease.add_shard_incarnations(incarnation);
  *lease.mutable_expires_at() = ToProtoTimestamp(absl::Now() + absl::Minutes(1));
  SignLease(key, &lease);
  return lease;
}

std::chrono::system_clock::time_point TestDeadline() {
  return absl::ToChronoTime(absl::Now() + absl::Seconds(20));
}

}  // namespace kvtier
