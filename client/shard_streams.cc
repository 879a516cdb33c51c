#include "client/shard_streams.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client_internal.h"

namespace kvtier {

struct ShardStreams::Stream {
  std::string address;
  std::shared_ptr<v1::AttentionService::Stub> stub;  // keeps the channel alive for the call
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReaderWriterInterface<v1::StepRequest, v1::StepResponse>> call;
  Tag write{this, Tag::Op::kWrite};
  Tag read{this, Tag::Op::kRead};
  Tag finish{this, Tag::Op::kFinish};
  int outstanding = 0;  // operations started and not yet completed
  bool broken = false;  // a failed operation; Finish asked for `end`
  bool cancelled = false;
  grpc::Status end;
  // In a round trip: the exchange it carries, and whether it may be sent again on a fresh
  // stream (see the header).
  int exchange = -1;
  bool resend = false;
};

ShardStreams::ShardStreams(TierConnection* connection) : connection_(connection) {}

ShardStreams::~ShardStreams() { Close(); }

ShardStreams::Stream& ShardStreams::Open(const std::string& address) {
  auto stream = std::make_unique<Stream>();
  stream->address = address;
  stream->stub = connection_->Shard(address);
  // NOTE: corked, the call's initial metadata leaves with its first message, and StartCall
  // performs no operation of its own (whose tag would never come back).
  stream->context.set_initial_metadata_corked(true);
  stream->call = stream->stub->PrepareAsyncStep(&stream->context, &queue_);
  stream->call->StartCall(nullptr);
  Stream& opened = *stream;
  streams_[address] = std::move(stream);
  return opened;
}

void ShardStreams::Send(Stream& stream, ShardExchange& exchange, int index) {
  stream.exchange = index;
  stream.call->Write(exchange.request, &stream.write);
  stream.call->Read(&exchange.response, &stream.read);
  stream.outstanding += 2;
}

void ShardStreams::Break(Stream& stream) {
  if (stream.broken) return;
  stream.broken = true;
  stream.call->Finish(&stream.end, &stream.finish);
  ++stream.outstanding;
}

void ShardStreams::RoundTrip(absl::Span<ShardExchange> exchanges, bool step_begins,
                             absl::Time deadline, absl::FunctionRef<void(int)> on_answer) {
  for (size_t i = 0; i < exchanges.size(); ++i) {
    ShardExchange& exchange = exchanges[i];
    exchange.answered = false;
    exchange.status = grpc::Status::OK;
    auto it = streams_.find(exchange.address);
    const bool carried = it != streams_.end();
    Stream& stream = carried ? *it->second : Open(exchange.address);
    stream.resend = step_begins && carried;
    Send(stream, exchange, static_cast<int>(i));
  }
  size_t unsettled = exchanges.size();
  bool past_deadline = false;
  while (unsettled > 0) {
    void* raw = nullptr;
    bool ok = false;
    if (past_deadline) {
      queue_.Next(&raw, &ok);
    } else if (queue_.AsyncNext(&raw, &ok, absl::ToChronoTime(deadline)) ==
               grpc::CompletionQueue::TIMEOUT) {
      past_deadline = true;
      for (auto& [address, stream] : streams_) {
        if (stream->exchange < 0) continue;
        stream->cancelled = true;
        stream->context.TryCancel();
      }
      continue;
    }
    const Tag& tag = *static_cast<const Tag*>(raw);
    Stream& stream = *tag.stream;
    --stream.outstanding;
    if (tag.op == Tag::Op::kRead && ok) {
      exchanges[stream.exchange].answered = true;
      on_answer(stream.exchange);
    } else if (!ok) {
      Break(stream);
    }
    if (stream.outstanding > 0) continue;
    const int index = stream.exchange;
    if (!stream.broken) {  // answered, its write done too
      stream.exchange = -1;
      --unsettled;
      continue;
    }
    // Broken, and every operation on it completed: drop it.
    ShardExchange& exchange = exchanges[index];
    const grpc::StatusCode code = stream.end.error_code();
    const bool resend = stream.resend && !exchange.answered && !stream.cancelled &&
                        (code == grpc::StatusCode::UNAVAILABLE ||
                         code == grpc::StatusCode::CANCELLED);
    if (!exchange.answered) {
      exchange.status = stream.cancelled
                            ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                           "the step's deadline passed before the shard answered")
                            : stream.end;
    }
    streams_.erase(exchange.address);
    if (resend) {
      exchange.status = grpc::Status::OK;
      Send(Open(exchange.address), exchange, index);
      continue;
    }
    --unsettled;
  }
}

void ShardStreams::Close() {
  int outstanding = 0;
  for (auto& [address, stream] : streams_) {
    stream->context.TryCancel();
    Break(*stream);
    outstanding += stream->outstanding;
  }
  void* tag = nullptr;
  bool ok = false;
  for (; outstanding > 0; --outstanding) queue_.Next(&tag, &ok);
  streams_.clear();
  queue_.Shutdown();
  while (queue_.Next(&tag, &ok)) {
  }
}

}  // namespace kvtier
