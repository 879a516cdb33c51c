#include "tests/client/fake_shard.h"

#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/server_builder.h"

namespace kvtier {
namespace {

// Room for any tensor a test sends.
constexpr int kFakeMessageBytes = 64 << 20;

}  // namespace

FakeShard::FakeShard() {
  StartedServer started = StartServer("fake", "127.0.0.1:0", kFakeMessageBytes, {this}).value();
  server_ = std::move(started.server);
  address_ = absl::StrCat("127.0.0.1:", started.port);
}

FakeShard::~FakeShard() { server_->Shutdown(); }

void FakeShard::FailNextStream(grpc::Status status, int after_layers) {
  absl::MutexLock lock(&mu_);
  failures_.push_back({std::move(status), after_layers});
}

std::vector<FakeShard::Stream> FakeShard::streams() const {
  absl::MutexLock lock(&mu_);
  return streams_;
}

grpc::Status FakeShard::Step(grpc::ServerContext* context,
                             grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  v1::StepRequest request;
  if (!stream->Read(&request)) return grpc::Status::OK;  // abandoned before its first message
  std::optional<Failure> failure;
  size_t index = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!failures_.empty()) {
      failure = std::move(failures_.front());
      failures_.pop_front();
    }
    index = streams_.size();
    streams_.push_back({context->deadline() == std::chrono::system_clock::time_point::max()
                            ? absl::InfiniteDuration()
                            : absl::FromChrono(context->deadline()) - absl::Now(),
                        {}});
  }
  int answered = 0;
  do {
    {
      absl::MutexLock lock(&mu_);
      streams_[index].requests.push_back(request);
    }
    if (failure.has_value() && answered == failure->after_layers) return failure->status;
    if (request.has_layer()) {
      v1::StepResponse response;
      response.set_layer(request.layer().layer());
      response.set_out(request.layer().q());
      if (!stream->Write(response)) return grpc::Status::OK;
      ++answered;
    }
  } while (stream->Read(&request));
  return failure.has_value() ? failure->status : grpc::Status::OK;
}

}  // namespace kvtier
