// Step: one forward pass of a batch of sessions through the tier. Its rows are the sessions'
// pending tokens (Session::Extend), session by session, T in all. For each layer, Attend
// sends every shard its head slice of the new tokens' q, k and v in one message, all shards
// before reading any answer, and assembles the full-head output:
//
//   q, out: [T][num_q_heads][head_dim]      k, v: [T][num_kv_heads][head_dim]
//
// in the model dtype. Each shard gets the step's block tables and positions once, on the
// first layer, over one Step stream that lives as long as this object; the whole step runs
// under the client's step deadline. A step that failed stays failed and drops the sessions'
// pending tokens (Extend them again to retry), as does a step destroyed before Finish.
//
// Not thread-safe: one thread at a time.
#ifndef KVTIER_CLIENT_STEP_H_
#define KVTIER_CLIENT_STEP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kvtier/v1/attention.pb.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class Client;
class Session;

class Step {
 public:
  ~Step();

  int64_t num_tokens() const { return num_tokens_; }

  absl::Status Attend(int layer, absl::Span<const char> q, absl::Span<const char> k,
                      absl::Span<const char> v, absl::Span<char> out);

  // Ends the streams; on success every session's pending tokens count as written.
  absl::Status Finish();

 private:
  friend class Client;

  // One shard's Step stream (step.cc).
  struct ShardStream;

  Step(Client* client, std::vector<Session*> sessions);
  absl::Status Open();
  absl::Status CheckSizes(int layer, absl::Span<const char> q, absl::Span<const char> k,
                          absl::Span<const char> v, absl::Span<char> out) const;
  // The shard's status after its stream broke, explained by the coordinator when it is the
  // session that is gone.
  absl::Status ShardFailure(ShardStream& shard);
  // Records the step's failure and drops the sessions' pending tokens.
  absl::Status Fail(absl::Status failure);

  Client* const client_;
  const std::vector<Session*> sessions_;
  const v1::ModelSpec model_;
  int64_t num_tokens_ = 0;
  v1::StepPlan plan_;
  std::vector<std::unique_ptr<ShardStream>> shards_;
  bool plan_sent_ = false;
  bool finished_ = false;
  absl::Status failure_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_STEP_H_
