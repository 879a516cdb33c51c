#include "tests/shard/fake_block_source.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/server_builder.h"
#include "service/head_placement.h"
#include "shard/pool_shape.h"

namespace kvtier {
namespace {

// Room for any tensor a test sends.
constexpr int kFakeMessageBytes = 64 << 20;

}  // namespace

FakeBlockSource::FakeBlockSource(Behavior behavior) : behavior_(behavior) {
  StartedServer started = StartServer("fake", "127.0.0.1:0", kFakeMessageBytes, {this}).value();
  server_ = std::move(started.server);
  address_ = absl::StrCat("127.0.0.1:", started.port);
}

FakeBlockSource::~FakeBlockSource() { Kill(); }

void FakeBlockSource::Kill() { server_->Shutdown(std::chrono::system_clock::now()); }

grpc::Status FakeBlockSource::DescribeRange(grpc::ServerContext* context,
                                            const v1::DescribeRangeRequest* request,
                                            v1::DescribeRangeResponse* response) {
  response->set_nccl_unavailable_reason("a fake source");
  return grpc::Status::OK;
}

grpc::Status FakeBlockSource::ReadBlocks(grpc::ServerContext* context,
                                         const v1::ReadBlocksRequest* request,
                                         grpc::ServerWriter<v1::ReadBlocksResponse>* writer) {
  const KvPoolShape shape =
      PoolShapeFor(request->range().model(),
                   HeadRangeForSlot(request->range().model(), request->range().slot()));
  v1::ReadBlocksResponse data;
  data.set_block_id(request->block_ids(0));
  data.set_layer(behavior_ == Behavior::kWrongOrder ? 1 : 0);
  data.set_k(std::string(shape.block_bytes(), 'k'));
  data.set_v(std::string(shape.block_bytes(), 'v'));
  writer->Write(data);
  first_sent_.Notify();
  if (behavior_ == Behavior::kHang) {
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    cancelled_.Notify();
    return grpc::Status(grpc::StatusCode::CANCELLED, "fake source: cancelled");
  }
  return grpc::Status::OK;
}

}  // namespace kvtier
