// FakeShard: a kvtier.v1.Attention served on an ephemeral 127.0.0.1 port, standing in for a
// shard in client library tests.
//
// It answers every layer message with out = the message's q (the same shape on a shard:
// [T][its query heads][head_dim]), so a test can tell which rows and heads came back from where.
// It records every step it served (each begun by a plan, on whichever stream) with its
// requests, and counts the streams. A scripted failure ends the stream of the next step with
// a status after answering a number of its layers. Answers can be held until a condition
// holds (to order the answers of several shards, or to outlast a step's deadline); a held
// answer is dropped when the client cancels.
//
// Thread-safe: mu_ guards the script and the record.
#ifndef KVTIER_TESTS_CLIENT_FAKE_SHARD_H_
#define KVTIER_TESTS_CLIENT_FAKE_SHARD_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/attention.grpc.pb.h"

namespace kvtier {

class FakeShard final : public v1::AttentionService::Service {
 public:
  struct RecordedStep {
    int stream;  // the index of the stream it came on, from 0 in arrival order
    std::vector<v1::StepRequest> requests;
  };

  FakeShard();
  ~FakeShard() override;

  const std::string& address() const { return address_; }

  // The next step answers `after_layers` layer messages, then ends its stream with `status`.
  void FailNextStep(grpc::Status status, int after_layers) ABSL_LOCKS_EXCLUDED(mu_);

  // Each answer waits until `ready()` is true (polled; empty: no wait).
  void HoldAnswersUntil(std::function<bool()> ready) ABSL_LOCKS_EXCLUDED(mu_);

  // The steps served, in arrival order; the streams opened; the layer answers sent (counted
  // as each is about to be written).
  std::vector<RecordedStep> steps() const ABSL_LOCKS_EXCLUDED(mu_);
  int streams() const ABSL_LOCKS_EXCLUDED(mu_);
  int answers() const ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Failure {
    grpc::Status status;
    int after_layers;
  };

  // Waits for the hold, if any; false if the client cancelled meanwhile.
  bool WaitForHold(grpc::ServerContext& context) const ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::deque<Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::function<bool()> hold_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedStep> steps_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int answers_ ABSL_GUARDED_BY(mu_) = 0;

  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_CLIENT_FAKE_SHARD_H_
