// kvtier_bench_data_plane: what a whole decode step through kvtier costs over gRPC itself, in
// one run.
//
// (a) Decode steps through a LocalTier on loopback (Llama-3-8B attention shapes: 32 query / 8
//     KV heads, head_dim 128, bf16, block 16; `--layers` layers; 1, 2 and 4 shards; batches of
//     1, 8 and 64 sessions), timed at the client over 64 generated tokens: per token, every
//     session's Extend (a coordinator call when its next token needs a new block: 4 in 64),
//     BeginStep, every layer's Attend, Finish. Each block of 64 starts from fresh sessions
//     with a 16-token prompt written (untimed), so contexts stay at 17 to 80 tokens.
// (b) A bare echo of the same bytes over one persistent Step stream: per token, one round trip
//     per layer carrying all shards' q, k and v, answered with an output-sized payload by a
//     server on gRPC's callback API that answers in the reaction, and driven by the client as
//     the tier's streams are (the asynchronous API, the calling thread polling the queue).
// Blocks of 64 tokens alternate between (a) and (b), so both see the same machine; step_us and
// echo_us are the medians over the blocks of the time per token, and the ratio is theirs.
// CPU time per layer round trip (getrusage): the calling thread (the client library's work,
// gRPC's client side included) and the whole process (client, shards, coordinator and gRPC's
// threads), and the whole process's per echo round trip; and the process's context switches
// (voluntary and not) per round trip of each; and what attention alone costs one shard per
// layer (the same heads, batch and mean context, on a pool of its own), the part of a step the
// echo does not do; and per step (token), the wall time of the sessions' Extends (with the
// coordinator calls among them), of BeginStep and of Finish. The last line is one JSON object with the rows of the largest --layers.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
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
#include "cache/kv/attention.h"
#include "cache/kv/kv_pool.h"
#include "cache/kv/thread_pool.h"
#include "service/head_placement.h"
#include "service/local/local_tier.h"
#include "shard/pool_device.h"
#include "shard/pool_shape.h"

ABSL_FLAG(std::vector<std::string>, layers, std::vector<std::string>({"4", "32"}),
          "layer counts to measure");
ABSL_FLAG(std::vector<std::string>, shards, std::vector<std::string>({"1", "2", "4"}),
          "shard counts to measure");
ABSL_FLAG(std::vector<std::string>, batch, std::vector<std::string>({"1", "8", "64"}),
          "sessions per step to measure");
ABSL_FLAG(int, rounds, 5, "timed blocks of 64 tokens of each kind per case (after one warm-up)");

namespace kvtier {
namespace {

constexpr int kQHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 128;
constexpr int kElementBytes = 2;  // bf16
constexpr int kBlockSize = 16;
constexpr int kPromptTokens = 16;
constexpr int kTokensPerBlock = 64;  // generated tokens per timed block

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

double CpuSeconds(int who) {
  rusage usage{};
  getrusage(who, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Context switches of every thread of the process, voluntary or not.
double ContextSwitches() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_nvcsw + usage.ru_nivcsw);
}

// (b), server side: answers each message with `out` bytes, in the reaction itself.
class EchoService final : public v1::AttentionService::CallbackService {
  grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse>* Step(
      grpc::CallbackServerContext* /*context*/) override {
    class Echo final : public grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse> {
     public:
      Echo() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::OK);
        response_.set_layer(request_.layer().layer());
        response_.mutable_out()->resize(request_.layer().q().size());
        StartWrite(&response_);
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        StartRead(&request_);
      }
      void OnDone() override { delete this; }

     private:
      v1::StepRequest request_;
      v1::StepResponse response_;
    };
    return new Echo;
  }
};

// (b), client side: one stream, each round trip a write and a read on a completion queue.
class EchoClient {
 public:
  EchoClient(const std::string& address, int max_message_bytes) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(max_message_bytes);
    args.SetMaxSendMessageSize(max_message_bytes);
    stub_ = v1::AttentionService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    call_ = stub_->PrepareAsyncStep(&context_, &queue_);
    call_->StartCall(&start_);
    Await(1);
  }
  ~EchoClient() {
    context_.TryCancel();
    grpc::Status status;
    call_->Finish(&status, &finish_);
    Await(1);
    queue_.Shutdown();
    void* tag;
    bool ok;
    while (queue_.Next(&tag, &ok)) {
    }
  }

  bool RoundTrip(const v1::StepRequest& request) {
    call_->Write(request, &write_);
    call_->Read(&response_, &read_);
    return Await(2);
  }

 private:
  bool Await(int events) {
    bool all_ok = true;
    for (int i = 0; i < events; ++i) {
      void* tag;
      bool ok = false;
      queue_.Next(&tag, &ok);
      all_ok = all_ok && ok;
    }
    return all_ok;
  }

  std::unique_ptr<v1::AttentionService::Stub> stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::ClientAsyncReaderWriterInterface<v1::StepRequest, v1::StepResponse>> call_;
  v1::StepResponse response_;
  char start_, write_, read_, finish_;  // tags
};

struct Row {
  int layers, shards, batch;
  double step_us, echo_us, client_cpu_us, cpu_us, echo_cpu_us, switches, echo_switches, attention_us;
  double extend_us, begin_us, finish_us;  // per token
};

v1::ModelSpec BenchModel(int layers, int shards, int num_blocks) {
  v1::ModelSpec model;
  model.mutable_id()->set_name("bench");
  model.set_num_layers(layers);
  model.set_num_kv_heads(kKvHeads);
  model.set_num_q_heads(kQHeads);
  model.set_head_dim(kHeadDim);
  model.set_dtype(v1::DTYPE_BF16);
  model.set_block_size(kBlockSize);
  model.set_num_blocks(num_blocks);
  model.set_num_shards(shards);
  return model;
}

std::string RandomBytes(int64_t elements, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::string bytes(elements * kElementBytes, '\0');
  for (int64_t i = 0; i < elements; ++i) StoreFromFloat(DType::kBF16, uniform(rng), bytes.data(), i);
  return bytes;
}

// The attention alone that one layer of a step asks of shard 0 (its heads, the batch, each
// session at the blocks' mean context, as in (a)), timed on a pool of its own with one thread,
// as LocalTier's shards run it: the median of 200 calls, in us.
absl::StatusOr<double> AttentionAlone(const v1::ModelSpec& model, int batch, std::mt19937& rng) {
  constexpr int kContext = kPromptTokens + kTokensPerBlock / 2;
  const v1::HeadRange heads = HeadRangeForSlot(model, 0);
  KvPoolShape shape = PoolShapeFor(model, heads);
  const int blocks_per_session = (kContext + kBlockSize - 1) / kBlockSize;
  shape.num_layers = 1;
  shape.num_blocks = batch * blocks_per_session;
  ThreadPool threads(1);
  absl::StatusOr<std::unique_ptr<KvPool>> pool = PoolFactoryFor(PoolDevice{}, &threads)(shape);
  if (!pool.ok()) return pool.status();
  std::vector<int64_t> slots(int64_t{shape.num_blocks} * kBlockSize);
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<int64_t>(i);
  const std::string kv = RandomBytes(static_cast<int64_t>(slots.size()) * NumHeads(heads) * kHeadDim, rng);
  if (absl::Status status = (*pool)->WriteKv(0, slots, kv, kv); !status.ok()) return status;
  std::vector<int32_t> block_ids(shape.num_blocks);
  for (int i = 0; i < shape.num_blocks; ++i) block_ids[i] = i;
  std::vector<SequenceLayout> sequences;
  for (int i = 0; i < batch; ++i) {
    sequences.push_back(SequenceLayout{
        .block_table = absl::MakeConstSpan(block_ids).subspan(i * blocks_per_session,
                                                               blocks_per_session),
        .context_len = kContext,
        .num_queries = 1});
  }
  const int q_heads = NumHeads(heads) * (kQHeads / kKvHeads);
  const std::string q = RandomBytes(int64_t{batch} * q_heads * kHeadDim, rng);
  std::string out(q.size(), '\0');
  std::vector<double> us;
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    if (absl::Status status = (*pool)->Attend(0, sequences,
                                              AttentionParams{.num_q_heads = q_heads,
                                                              .scale = 0.0f,
                                                              .kv_split_tokens = 0,
                                                              .kv_heads_per_unit = 0},
                                              q, absl::MakeSpan(out));
        !status.ok()) {
      return status;
    }
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return Median(us);
}

// Time spent in a step's parts outside Attend, in us, summed over steps.
struct StepParts {
  double extend_us = 0;  // every session's Extend
  double begin_us = 0;   // BeginStep
  double finish_us = 0;  // Finish
};

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// One step over `sessions`, each extended by `tokens` tokens, every layer attended.
absl::Status RunStep(Client& client, const std::vector<Session*>& sessions, int tokens,
                     int layers, const std::string& q, const std::string& kv, std::string& out,
                     StepParts& parts) {
  auto start = Clock::now();
  for (Session* session : sessions) {
    if (absl::Status status = session->Extend(std::vector<int32_t>(tokens, 1)).status();
        !status.ok()) {
      return status;
    }
  }
  parts.extend_us += MicrosSince(start);
  start = Clock::now();
  absl::StatusOr<std::unique_ptr<Step>> step = client.BeginStep(sessions);
  if (!step.ok()) return step.status();
  parts.begin_us += MicrosSince(start);
  for (int layer = 0; layer < layers; ++layer) {
    if (absl::Status status = (*step)->Attend(layer, q, kv, kv, absl::MakeSpan(out));
        !status.ok()) {
      return status;
    }
  }
  start = Clock::now();
  absl::Status finished = (*step)->Finish();
  parts.finish_us += MicrosSince(start);
  return finished;
}

// `batch` fresh sessions of `client`, each with kPromptTokens tokens written.
absl::Status OpenSessions(Client& client, const v1::ModelId& model, int batch, int layers,
                          std::mt19937& rng, std::vector<std::unique_ptr<Session>>& owned,
                          std::vector<Session*>& sessions) {
  for (const std::unique_ptr<Session>& session : owned) {
    if (absl::Status status = session->Close(); !status.ok()) return status;
  }
  owned.clear();
  sessions.clear();
  for (int i = 0; i < batch; ++i) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client.OpenSession(model, absl::StrCat("bench-", i));
    if (!session.ok()) return session.status();
    sessions.push_back(session->get());
    owned.push_back(*std::move(session));
  }
  const std::string q = RandomBytes(int64_t{batch} * kPromptTokens * kQHeads * kHeadDim, rng);
  const std::string kv = RandomBytes(int64_t{batch} * kPromptTokens * kKvHeads * kHeadDim, rng);
  std::string out(q.size(), '\0');
  StepParts untimed;
  return RunStep(client, sessions, kPromptTokens, layers, q, kv, out, untimed);
}

absl::StatusOr<Row> Measure(int layers, int shards, int batch, int rounds) {
  // Each block starts afresh from the prompt, so the context stays short (16 to 80 tokens):
  // what is measured is the data plane, not attention over a long context.
  const int num_blocks = batch * ((kPromptTokens + kTokensPerBlock) / kBlockSize + 2);
  LocalTierOptions options;
  options.num_shards = shards;
  options.model = BenchModel(layers, shards, num_blocks);
  const int64_t block_bytes = int64_t{layers} * 2 * kBlockSize * kKvHeads * kHeadDim * kElementBytes;
  options.shard_capacity_bytes = num_blocks * block_bytes / shards + (int64_t{64} << 20);
  absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
  if (!tier.ok()) return tier.status();
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect({.coordinator_address = (*tier)->coordinator_address(),
                       .control_deadline = absl::Seconds(10),
                       .step_deadline = absl::Seconds(60),
                       .max_message_bytes = options.max_message_bytes});
  if (!client.ok()) return client.status();
  std::vector<std::unique_ptr<Session>> owned;
  std::vector<Session*> sessions;
  std::mt19937 rng(1);
  const std::string q = RandomBytes(int64_t{batch} * kQHeads * kHeadDim, rng);
  const std::string kv = RandomBytes(int64_t{batch} * kKvHeads * kHeadDim, rng);
  std::string out(q.size(), '\0');

  EchoService echo_service;
  absl::StatusOr<StartedServer> echo_server =
      StartServer("echo_listen_address", "127.0.0.1:0", options.max_message_bytes, {&echo_service});
  if (!echo_server.ok()) return echo_server.status();
  v1::StepRequest echo_request;
  echo_request.mutable_layer()->set_q(q);
  echo_request.mutable_layer()->set_k(kv);
  echo_request.mutable_layer()->set_v(kv);
  std::vector<double> step_us, echo_us, client_cpu, process_cpu, echo_process_cpu, switches,
      echo_switches, extend_us, begin_us, finish_us;
  {
    EchoClient echo(absl::StrCat("127.0.0.1:", echo_server->port), options.max_message_bytes);
    for (int round = -1; round < rounds; ++round) {  // round -1 warms up
      if (absl::Status status =
              OpenSessions(**client, options.model->id(), batch, layers, rng, owned, sessions);
          !status.ok()) {
        return status;
      }
      const double thread_before = CpuSeconds(RUSAGE_THREAD);
      const double process_before = CpuSeconds(RUSAGE_SELF);
      const double switches_before = ContextSwitches();
      const auto start = Clock::now();
      StepParts block_parts;
      for (int token = 0; token < kTokensPerBlock; ++token) {
        if (absl::Status status = RunStep(**client, sessions, 1, layers, q, kv, out, block_parts);
            !status.ok()) {
          return status;
        }
      }
      const double elapsed = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      const double thread_cpu = CpuSeconds(RUSAGE_THREAD) - thread_before;
      const double all_cpu = CpuSeconds(RUSAGE_SELF) - process_before;
      const double step_switches = ContextSwitches() - switches_before;
      const double echo_cpu_before = CpuSeconds(RUSAGE_SELF);
      const double echo_switches_before = ContextSwitches();
      const auto echo_start = Clock::now();
      for (int i = 0; i < kTokensPerBlock * layers; ++i) {
        if (!echo.RoundTrip(echo_request)) return absl::UnavailableError("echo stream broke");
      }
      const double echo_elapsed =
          std::chrono::duration<double, std::micro>(Clock::now() - echo_start).count();
      const double echo_cpu = CpuSeconds(RUSAGE_SELF) - echo_cpu_before;
      const double echo_step_switches = ContextSwitches() - echo_switches_before;
      if (round < 0) continue;
      step_us.push_back(elapsed / kTokensPerBlock);
      echo_us.push_back(echo_elapsed / kTokensPerBlock);
      client_cpu.push_back(1e6 * thread_cpu / (kTokensPerBlock * layers));
      process_cpu.push_back(1e6 * all_cpu / (kTokensPerBlock * layers));
      echo_process_cpu.push_back(1e6 * echo_cpu / (kTokensPerBlock * layers));
      switches.push_back(step_switches / (kTokensPerBlock * layers));
      extend_us.push_back(block_parts.extend_us / kTokensPerBlock);
      begin_us.push_back(block_parts.begin_us / kTokensPerBlock);
      finish_us.push_back(block_parts.finish_us / kTokensPerBlock);
      echo_switches.push_back(echo_step_switches / (kTokensPerBlock * layers));
    }
  }
  echo_server->server->Shutdown();
  absl::StatusOr<double> attention_us = AttentionAlone(*options.model, batch, rng);
  if (!attention_us.ok()) return attention_us.status();
  return Row{.layers = layers,
             .shards = shards,
             .batch = batch,
             .step_us = Median(step_us),
             .echo_us = Median(echo_us),
             .client_cpu_us = Median(client_cpu),
             .cpu_us = Median(process_cpu),
             .echo_cpu_us = Median(echo_process_cpu),
             .switches = Median(switches),
             .echo_switches = Median(echo_switches),
             .attention_us = *attention_us,
             .extend_us = Median(extend_us),
             .begin_us = Median(begin_us),
             .finish_us = Median(finish_us)};
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kvtier_bench_data_plane: %s\n", status.ToString().c_str());
  return 1;
}

absl::StatusOr<std::vector<int>> Counts(const char* flag, const std::vector<std::string>& texts,
                                        int max) {
  std::vector<int> counts;
  for (const std::string& text : texts) {
    int count = 0;
    if (!absl::SimpleAtoi(text, &count) || count < 1 || count > max) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": expected counts in 1..", max, ", got \"", text, "\""));
    }
    counts.push_back(count);
  }
  return counts;
}

int Main() {
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (rounds < 1) return Fail(absl::InvalidArgumentError("--rounds: expected >= 1"));
  absl::StatusOr<std::vector<int>> layer_counts = Counts("layers", absl::GetFlag(FLAGS_layers), 256);
  absl::StatusOr<std::vector<int>> shard_counts = Counts("shards", absl::GetFlag(FLAGS_shards), kKvHeads);
  absl::StatusOr<std::vector<int>> batches = Counts("batch", absl::GetFlag(FLAGS_batch), 1024);
  for (const auto* counts : {&layer_counts, &shard_counts, &batches}) {
    if (!counts->ok()) return Fail(counts->status());
  }
  std::printf(
      "data plane: whole decode steps (Extend, BeginStep, every layer's Attend, Finish) over %d "
      "generated tokens, %d/%d heads x %d, bf16, block %d, %d prompt tokens, loopback; echo = "
      "the same bytes, one round trip per layer, over one persistent stream; medians of %d "
      "blocks; per layer round trip: CPU us of the client thread / the whole process / the whole "
      "process for the echo, the process's context switches for the tier and the echo, and "
      "attention alone on one shard (its heads, the batch, 48 tokens of context); per step: "
      "Extends, BeginStep, Finish\n",
      kTokensPerBlock, kQHeads, kKvHeads, kHeadDim, kBlockSize, kPromptTokens, rounds);
  std::printf("%6s %6s %5s %10s %10s %7s %11s %11s %11s %9s %9s %8s %9s %8s %9s\n", "layers",
              "shards", "batch", "step us", "echo us", "ratio", "client cpu", "process cpu",
              "echo cpu", "switches", "echo sw", "attn us", "extend us", "begin us",
              "finish us");
  std::vector<Row> rows;
  for (int layers : *layer_counts) {
    for (int shards : *shard_counts) {
      for (int batch : *batches) {
        absl::StatusOr<Row> row = Measure(layers, shards, batch, rounds);
        if (!row.ok()) return Fail(row.status());
        std::printf(
            "%6d %6d %5d %10.1f %10.1f %7.2f %11.1f %11.1f %11.1f %9.1f %9.1f %8.1f %9.1f %8.1f "
            "%9.1f\n",
            layers, shards, batch, row->step_us, row->echo_us, row->step_us / row->echo_us,
            row->client_cpu_us, row->cpu_us, row->echo_cpu_us, row->switches, row->echo_switches,
            row->attention_us, row->extend_us, row->begin_us, row->finish_us);
        std::fflush(stdout);
        rows.push_back(*row);
      }
    }
  }
  const int last_layers = layer_counts->back();
  std::vector<std::string> json;
  for (const Row& row : rows) {
    if (row.layers != last_layers) continue;
    json.push_back(absl::StrCat(
        "{\"shards\":", row.shards, ",\"batch\":", row.batch, ",\"step_us\":",
        absl::StrFormat("%.1f", row.step_us), ",\"echo_us\":", absl::StrFormat("%.1f", row.echo_us),
        ",\"ratio\":", absl::StrFormat("%.3f", row.step_us / row.echo_us),
        ",\"cpu_us_per_layer\":", absl::StrFormat("%.1f", row.cpu_us),
        ",\"client_cpu_us_per_layer\":", absl::StrFormat("%.1f", row.client_cpu_us),
        ",\"echo_cpu_us_per_round_trip\":", absl::StrFormat("%.1f", row.echo_cpu_us),
        ",\"switches_per_layer\":", absl::StrFormat("%.1f", row.switches),
        ",\"echo_switches_per_round_trip\":", absl::StrFormat("%.1f", row.echo_switches),
        ",\"attention_us_per_layer\":", absl::StrFormat("%.1f", row.attention_us),
        ",\"extend_us_per_step\":", absl::StrFormat("%.1f", row.extend_us),
        ",\"begin_us_per_step\":", absl::StrFormat("%.1f", row.begin_us),
        ",\"finish_us_per_step\":", absl::StrFormat("%.1f", row.finish_us), "}"));
  }
  std::printf("{\"bench\":\"data_plane\",\"layers\":%d,\"rows\":[%s]}\n", last_layers,
              absl::StrJoin(json, ",").c_str());
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(
      argc, argv, "kvtier's whole decode step against a bare gRPC echo of the same round trips.");
  return kvtier::Main();
}
