// kvtier_bench_data_plane: what kvtier's data plane costs over gRPC itself, in one run.
//
// (a) A 1-token decode Attend of one layer through a LocalTier on loopback (Llama-3-8B shapes:
//     32 query / 8 KV heads, head_dim 128, bf16; --context tokens already cached), timed at
//     the client: Step::Attend slices q/k/v per shard, sends one message per shard, and the
//     shards check the leases, write the token's K/V, run attention and answer.
// (b) A bare echo of the same bytes over the same kind of stream: a server whose Step answers
//     each message with an output-sized payload without looking at it.
// Calls alternate between (a) and (b) in blocks, so both see the same machine; the ratio is
// median (a) / median (b). DESIGN's target: <= 1.5. The last line is one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cache/kv/dtype.h"
#include "client/client.h"
#include "client/session.h"
#include "client/step.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "proto/wire/command_line.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/server_builder.h"
#include "service/local/local_tier.h"

ABSL_FLAG(int, context, 16, "tokens cached before the timed decode token");
ABSL_FLAG(std::vector<std::string>, shards, std::vector<std::string>({"1", "2"}),
          "shard counts to measure");
ABSL_FLAG(int, calls, 2000, "timed calls of each kind per shard count");

namespace kvtier {
namespace {

constexpr int kQHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 128;
constexpr int kLayers = 4;
constexpr int kElementBytes = 2;  // bf16

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// (b): answers every message with `out` bytes.
class EchoService final : public v1::AttentionService::Service {
 public:
  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) override {
    v1::StepRequest request;
    v1::StepResponse response;
    while (stream->Read(&request)) {
      response.set_layer(request.layer().layer());
      response.mutable_out()->resize(request.layer().q().size());
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }
};

v1::ModelSpec BenchModel(int shards, int context) {
  v1::ModelSpec model;
  model.mutable_id()->set_name("bench");
  model.set_num_layers(kLayers);
  model.set_num_kv_heads(kKvHeads);
  model.set_num_q_heads(kQHeads);
  model.set_head_dim(kHeadDim);
  model.set_dtype(v1::DTYPE_BF16);
  model.set_block_size(16);
  model.set_num_blocks(context / 16 + 2);
  model.set_num_shards(shards);
  return model;
}

struct Result {
  double attend_us;
  double echo_us;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kvtier_bench_data_plane: %s\n", status.ToString().c_str());
  return 1;
}

absl::StatusOr<Result> Measure(int shards, int context, int calls) {
  LocalTierOptions options;
  options.num_shards = shards;
  options.model = BenchModel(shards, context);
  absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
  if (!tier.ok()) return tier.status();
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect({.coordinator_address = (*tier)->coordinator_address()});
  if (!client.ok()) return client.status();
  absl::StatusOr<std::unique_ptr<Session>> session =
      (*client)->OpenSession(options.model->id(), "bench");
  if (!session.ok()) return session.status();

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto random_bytes = [&](int64_t tokens, int heads) {
    std::string bytes(tokens * heads * kHeadDim * kElementBytes, '\0');
    for (int64_t i = 0; i < tokens * heads * kHeadDim; ++i) {
      StoreFromFloat(DType::kBF16, uniform(rng), bytes.data(), i);
    }
    return bytes;
  };
  // Prefill the context, then hold one decode step open.
  for (int64_t tokens : {int64_t{context}, int64_t{1}}) {
    if (absl::Status status = (*session)->Extend(std::vector<int32_t>(tokens, 1)).status();
        !status.ok()) {
      return status;
    }
    if (tokens == 1) break;
    absl::StatusOr<std::unique_ptr<Step>> prefill = (*session)->BeginStep();
    if (!prefill.ok()) return prefill.status();
    const std::string q = random_bytes(tokens, kQHeads), kv = random_bytes(tokens, kKvHeads);
    std::string out(q.size(), '\0');
    for (int layer = 0; layer < kLayers; ++layer) {
      if (absl::Status status = (*prefill)->Attend(layer, q, kv, kv, absl::MakeSpan(out));
          !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = (*prefill)->Finish(); !status.ok()) return status;
  }
  absl::StatusOr<std::unique_ptr<Step>> decode = (*session)->BeginStep();
  if (!decode.ok()) return decode.status();
  const std::string q = random_bytes(1, kQHeads), k = random_bytes(1, kKvHeads),
                    v = random_bytes(1, kKvHeads);
  std::string out(q.size(), '\0');

  // Served as the shards are.
  EchoService echo_service;
  absl::StatusOr<StartedServer> echo_server =
      StartServer("echo_listen_address", "127.0.0.1:0", options.max_message_bytes, {&echo_service});
  if (!echo_server.ok()) return echo_server.status();
  auto echo_stub = v1::AttentionService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(echo_server->port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext echo_context;
  auto echo = echo_stub->Step(&echo_context);
  v1::StepRequest echo_request;
  echo_request.mutable_layer()->set_q(q);
  echo_request.mutable_layer()->set_k(k);
  echo_request.mutable_layer()->set_v(v);
  v1::StepResponse echo_response;

  std::vector<double> attend_us, echo_us;
  constexpr int kBlock = 100;
  for (int done = -kBlock; done < calls; done += kBlock) {  // the first block warms up
    for (int i = 0; i < kBlock; ++i) {
      const auto start = Clock::now();
      if (absl::Status status = (*decode)->Attend(i % kLayers, q, k, v, absl::MakeSpan(out));
          !status.ok()) {
        return status;
      }
      if (done >= 0) {
        attend_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      }
    }
    for (int i = 0; i < kBlock; ++i) {
      const auto start = Clock::now();
      if (!echo->Write(echo_request) || !echo->Read(&echo_response)) {
        return absl::UnavailableError("echo stream broke");
      }
      if (done >= 0) {
        echo_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      }
    }
  }
  echo->WritesDone();
  if (grpc::Status status = echo->Finish(); !status.ok()) {
    return absl::UnavailableError(status.error_message());
  }
  echo_server->server->Shutdown();
  if (absl::Status status = (*decode)->Finish(); !status.ok()) return status;
  return Result{Median(attend_us), Median(echo_us)};
}

int Main() {
  const int context = absl::GetFlag(FLAGS_context);
  const int calls = absl::GetFlag(FLAGS_calls);
  if (context < 1 || calls < 1) {
    return Fail(absl::InvalidArgumentError("--context and --calls: expected >= 1"));
  }
  std::printf(
      "data plane: 1-token decode Attend, %d/%d heads x %d, bf16, context %d, loopback; "
      "echo = the same bytes over a bare Step stream; medians of %d calls each\n",
      kQHeads, kKvHeads, kHeadDim, context, calls);
  std::printf("%7s %12s %12s %8s\n", "shards", "attend us", "echo us", "ratio");
  Result last{};
  int last_shards = 0;
  for (const std::string& text : absl::GetFlag(FLAGS_shards)) {
    const int shards = std::atoi(text.c_str());
    if (shards < 1 || shards > kKvHeads) {
      return Fail(absl::InvalidArgumentError("--shards: expected counts in 1..8, got " + text));
    }
    absl::StatusOr<Result> result = Measure(shards, context, calls);
    if (!result.ok()) return Fail(result.status());
    std::printf("%7d %12.1f %12.1f %8.2f\n", shards, result->attend_us, result->echo_us,
                result->attend_us / result->echo_us);
    std::fflush(stdout);
    last = *result;
    last_shards = shards;
  }
  std::printf(
      "{\"bench\":\"data_plane\",\"shards\":%d,\"context\":%d,\"attend_us\":%.1f,"
      "\"echo_us\":%.1f,\"ratio\":%.3f}\n",
      last_shards, context, last.attend_us, last.echo_us, last.attend_us / last.echo_us);
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(argc, argv,
                           "kvtier's 1-token Attend round trip against a bare gRPC echo.");
  return kvtier::Main();
}
