// ShardStreams: a set of long-lived Step streams (attention.proto), one per shard address, for
// one step at a time; TierConnection lends a set to each step and takes it back at its end, so
// a front-end that runs one step at a time keeps one stream per shard for good, and successive
// steps pay no stream setup or teardown. Not part of the API (client/ only).
//
// A round trip sends every shard its message at once and takes the answers as they arrive, so
// shards compute side by side. The streams run on gRPC's asynchronous API over one completion
// queue that the calling thread polls itself: no client thread hands a message to another.
// A stream that broke is dropped, and the next round trip to its address opens a new one.
// A step's first message over a stream carried over from an earlier step is sent once more
// over a fresh stream when the old one proves broken before answering (UNAVAILABLE or
// CANCELLED: the connection was reset, or the shard restarted, while the stream was idle);
// that is safe because the message's K/V writes and attention repeat exactly. A stream that
// breaks in the middle of a step fails that step.
//
// Not thread-safe: one step (one thread) at a time.
#ifndef KVTIER_CLIENT_SHARD_STREAMS_H_
#define KVTIER_CLIENT_SHARD_STREAMS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/support/async_stream.h"
#include "kvtier/v1/attention.grpc.pb.h"

namespace kvtier {

class TierConnection;

// One shard's part of a round trip.
struct ShardExchange {
  std::string address;
  v1::StepRequest request;
  // Filled in by ShardStreams::RoundTrip: the answer, or why there is none.
  v1::StepResponse response;
  bool answered = false;
  grpc::Status status;  // when not answered: the stream's end (or DEADLINE_EXCEEDED)
};

class ShardStreams {
 public:

  // Stubs come from `connection`, which must outlive the set.
  explicit ShardStreams(TierConnection* connection);
  // Cancels the streams.
  ~ShardStreams();

  ShardStreams(const ShardStreams&) = delete;
  ShardStreams& operator=(const ShardStreams&) = delete;

  // Sends each exchange's request over its address's stream, all at once, then waits until
  // every one is answered (calling on_answer(i) as answer i arrives) or its stream broke. Past
  // `deadline` the streams still owing an answer are cancelled (DEADLINE_EXCEEDED).
  // `step_begins`: the requests begin a step (see above on resending).
  void RoundTrip(absl::Span<ShardExchange> exchanges, bool step_begins, absl::Time deadline,
                 absl::FunctionRef<void(int)> on_answer);

 private:
  struct Stream;
  // A completion queue tag: which operation of which stream.
  struct Tag {
    enum class Op { kWrite, kRead, kFinish };
    Stream* stream;
    Op op;
  };

  Stream& Open(const std::string& address);
  // Starts the write of exchanges[index] and the read of its answer.
  void Send(Stream& stream, ShardExchange& exchange, int index);
  // Asks for the broken stream's status.
  void Break(Stream& stream);
  // Cancels every stream and waits for its operations.
  void Close();

  TierConnection* const connection_;
  grpc::CompletionQueue queue_;
  absl::flat_hash_map<std::string, std::unique_ptr<Stream>> streams_;  // by address
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARD_STREAMS_H_
