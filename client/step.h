// Step: one forward pass of a batch of sessions through the tier. Its rows are the sessions'
// pending tokens (Session::Extend), session by session, T in all. For each layer, Attend
// sends every shard its head slice of the new tokens' q, k and v in one message, all at once,
// and assembles the full-head output from the answers in whatever order they arrive:
//
//   q, out: [T][num_q_heads][head_dim]      k, v: [T][num_kv_heads][head_dim]
//
// in the model dtype. Each shard gets the step's block tables and positions once, with the
// first layer, over the client's long-lived Step stream to it (shard_streams.h: no stream is
// opened or closed per step), and Finish sends nothing; the whole step runs under the client's
// step deadline (DEADLINE_EXCEEDED past it). A shard whose stream breaks fails the step with
// its status, or with the coordinator's re-prefill status when the session was lost with it;
// the next step opens a new stream. A step that failed stays failed and drops the sessions'
// pending tokens (Extend them again to retry), as does a step destroyed before Finish.
//
// Not thread-safe: one thread at a time.
#ifndef KVTIER_CLIENT_STEP_H_
#define KVTIER_CLIENT_STEP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvtier/v1/attention.pb.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class Client;
class Session;
class ShardStreams;
struct ShardExchange;

class Step {
 public:
  ~Step();

  int64_t num_tokens() const { return num_tokens_; }

  absl::Status Attend(int layer, absl::Span<const char> q, absl::Span<const char> k,
                      absl::Span<const char> v, absl::Span<char> out);

  // Ends the step; on success every session's pending tokens count as written.
  // FAILED_PRECONDITION when no layer was attended.
  absl::Status Finish();

 private:
  friend class Client;

  Step(Client* client, std::vector<Session*> sessions);
  absl::Status Open();
  absl::Status CheckSizes(int layer, absl::Span<const char> q, absl::Span<const char> k,
                          absl::Span<const char> v, absl::Span<char> out) const;
  // Shard `index`'s answer into its heads of `out`.
  absl::Status Assemble(int index, int layer, absl::Span<char> out) const;
  // Shard `index`'s status after its stream broke, explained by the coordinator when it is
  // the session that is gone.
  absl::Status ShardFailure(int index);
  // Records the step's failure and drops the sessions' pending tokens.
  absl::Status Fail(absl::Status failure);
  // Gives the streams back to the client for the next step.
  void ReleaseStreams();

  Client* const client_;
  const std::vector<Session*> sessions_;
  const v1::ModelSpec model_;
  int64_t num_tokens_ = 0;
  int64_t head_bytes_ = 0;
  absl::Time deadline_;
  v1::StepPlan plan_;
  std::vector<ShardExchange> exchanges_;  // one per shard in slot order, reused layer by layer
  std::unique_ptr<ShardStreams> streams_;
  bool plan_sent_ = false;
  bool finished_ = false;
  absl::Status failure_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_STEP_H_
