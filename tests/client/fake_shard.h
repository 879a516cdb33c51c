// FakeShard: a kvtier.v1.Attention served on an ephemeral 127.0.0.1 port, standing in for a
// shard in client library tests.
//
// It answers every layer message with out = the message's q (the same shape on a shard:
// [T][its query heads][head_dim]), so a test can tell which rows and heads came back from where.
// It records every Step stream it served: the deadline it carried and each request. A scripted
// failure ends the next stream with a status after answering a number of layers (at
// num_layers: when the client half-closes, i.e. in Step::Finish).
//
// Thread-safe: mu_ guards the script and the record.
#ifndef KVTIER_TESTS_CLIENT_FAKE_SHARD_H_
#define KVTIER_TESTS_CLIENT_FAKE_SHARD_H_

#include <deque>
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
  struct Stream {
    absl::Duration deadline;  // time left when it arrived (InfiniteDuration without one)
    std::vector<v1::StepRequest> requests;
  };

  FakeShard();
  ~FakeShard() override;

  const std::string& address() const { return address_; }

  // The next stream answers `after_layers` layer messages, then ends with `status`.
  void FailNextStream(grpc::Status status, int after_layers) ABSL_LOCKS_EXCLUDED(mu_);

  // Streams that sent at least one request, in arrival order.
  std::vector<Stream> streams() const ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Failure {
    grpc::Status status;
    int after_layers;
  };

  mutable absl::Mutex mu_;
  std::deque<Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<Stream> streams_ ABSL_GUARDED_BY(mu_);

  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_CLIENT_FAKE_SHARD_H_
