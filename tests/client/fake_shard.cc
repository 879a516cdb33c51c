#include "tests/client/fake_shard.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

void FakeShard::FailNextStep(grpc::Status status, int after_layers) {
  absl::MutexLock lock(&mu_);
  failures_.push_back({std::move(status), after_layers});
}

void FakeShard::HoldAnswersUntil(std::function<bool()> ready) {
  absl::MutexLock lock(&mu_);
  hold_ = std::move(ready);
}

std::vector<FakeShard::RecordedStep> FakeShard::steps() const {
  absl::MutexLock lock(&mu_);
  return steps_;
}

int FakeShard::streams() const {
  absl::MutexLock lock(&mu_);
  return streams_;
}

int FakeShard::answers() const {
  absl::MutexLock lock(&mu_);
  return answers_;
}

bool FakeShard::WaitForHold(grpc::ServerContext& context) const {
  std::function<bool()> ready;
  {
    absl::MutexLock lock(&mu_);
    ready = hold_;
  }
  while (ready && !ready()) {
    if (context.IsCancelled()) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

grpc::Status FakeShard::Step(grpc::ServerContext* context,
                             grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  int stream_index = 0;
  {
    absl::MutexLock lock(&mu_);
    stream_index = streams_++;
  }
  v1::StepRequest request;
  std::optional<Failure> failure;
  std::optional<size_t> step;  // its index in steps_
  int answered = 0;            // in the current step
  while (stream->Read(&request)) {
    if (!request.has_plan() && !step.has_value()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "plan: expected first");
    }
    {
      absl::MutexLock lock(&mu_);
      if (request.has_plan()) {
        failure.reset();
        if (!failures_.empty()) {
          failure = std::move(failures_.front());
          failures_.pop_front();
        }
        step = steps_.size();
        steps_.push_back({stream_index, {}});
        answered = 0;
      }
      steps_[*step].requests.push_back(request);
    }
    if (failure.has_value() && answered == failure->after_layers) return failure->status;
    if (!request.has_layer()) continue;
    if (!WaitForHold(*context)) return grpc::Status::CANCELLED;
    v1::StepResponse response;
    response.set_layer(request.layer().layer());
    response.set_out(request.layer().q());
    {
      // Counted before the write, so a client that has the answer sees it counted.
      absl::MutexLock lock(&mu_);
      ++answers_;
    }
    if (!stream->Write(response)) return grpc::Status::OK;
    ++answered;
  }
  return grpc::Status::OK;
}

}  // namespace kvtier
