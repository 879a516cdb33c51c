// Fuzzes the shard's step validation: the checks a Step stream's messages pass before they reach
// the K/V pool, in the order AttentionServiceImpl (shard/attention_service.cc) applies them. A
// plan: StepBatch::Build, then HostedModel::AdmitLease for each sequence. A layer: its index,
// HostedModel::CheckLeaseCurrent for each sequence, q's size, KvPool::WriteKv, KvPool::Attend.
// Between them come the coordinator's revocations and block copies (HostedModel::Revoke,
// CopyBlocks), and up to two streams are open at once.
//
// An input (read with FuzzedDataProvider) hosts one head range of a small model it describes,
// in a CPU pool, and plays up to 32 of those actions on it. Leases are signed with the range's
// lease key, so most pass the signature and reach the checks behind it; some are forged after
// signing. The harness keeps its own account of what the shard has admitted and revoked, and
// besides a crash, a sanitizer report or a leak, it aborts, saying why, when
//   - a plan, lease, layer, copy or revocation is accepted where the rules in step_batch.h and
//     hosted_model.h refuse it, or refused where they accept it: above all, a lease admitted
//     although it is forged, expired, for another model or incarnation, writes below its
//     writable_from or its writer's highest admitted one, names a block at a generation below
//     one admitted or revoked, or is of a revoked session or an older writer epoch;
//   - a refused layer, copy or revocation changed the pool;
//   - an accepted layer wrote a slot that is none of its new tokens' (token p of a sequence in
//     slot blocks[p / block_size] * block_size + p % block_size), or did not store there the k
//     and v it sent; an accepted copy did anything but copy.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cache/kv/cpu_kv_pool.h"
#include "kvtier/v1/attention.pb.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/time_convert.h"
#include "shard/hosted_model.h"
#include "shard/step_batch.h"

namespace kvtier {
namespace {

constexpr char kLeaseKey[] = "the shard step fuzzer's lease key";
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr int kMaxActions = 32;
constexpr int kSessions = 3;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "shard_step_fuzzer: %s\n", what.c_str());
  std::abort();
}

// Mostly low..high; now and then an edge of int32.
int32_t Draw(FuzzedDataProvider& in, int32_t low, int32_t high) {
  if (in.ConsumeIntegralInRange(0, 15) == 0) {
    return in.PickValueInArray(
        {std::numeric_limits<int32_t>::min(), -1, std::numeric_limits<int32_t>::max()});
  }
  return in.ConsumeIntegralInRange(low, high);
}

// Model geometries: few, so that few pool shapes come up (KeptPool), and varied: every dtype,
// odd and even sizes, head_dim 16 for the vector kernels.
struct Geometry {
  int layers, kv_heads, group, head_dim;
  v1::Dtype dtype;
  int block_size, num_blocks;
};
constexpr Geometry kGeometries[] = {
    {1, 1, 1, 1, v1::DTYPE_FP32, 1, 4},  {2, 2, 2, 3, v1::DTYPE_FP16, 3, 6},
    {2, 4, 1, 16, v1::DTYPE_BF16, 4, 8}, {3, 3, 3, 8, v1::DTYPE_FP32, 2, 12},
    {1, 4, 2, 16, v1::DTYPE_FP16, 8, 5}, {2, 2, 1, 2, v1::DTYPE_BF16, 5, 10},
};

v1::HostedRange DrawRange(FuzzedDataProvider& in) {
  const Geometry& geometry = in.PickValueInArray(kGeometries);
  v1::HostedRange range;
  v1::ModelSpec& spec = *range.mutable_model();
  spec.mutable_id()->set_name("m");
  spec.set_num_layers(geometry.layers);
  spec.set_num_kv_heads(geometry.kv_heads);
  spec.set_num_q_heads(geometry.kv_heads * geometry.group);
  spec.set_head_dim(geometry.head_dim);
  spec.set_dtype(geometry.dtype);
  spec.set_block_size(geometry.block_size);
  spec.set_num_blocks(geometry.num_blocks);
  spec.set_num_shards(in.ConsumeIntegralInRange(1, spec.num_kv_heads()));
  range.set_slot(in.ConsumeIntegralInRange(0, spec.num_shards() - 1));
  const int begin = in.ConsumeIntegralInRange(0, spec.num_kv_heads() - 1);
  range.mutable_heads()->set_kv_head_begin(begin);
  range.mutable_heads()->set_kv_head_end(in.ConsumeIntegralInRange(begin + 1, spec.num_kv_heads()));
  range.set_incarnation(in.ConsumeIntegralInRange(1, 3));
  return range;
}

// A CPU pool of the kept ones (KeptPool), through which a HostedModel reaches it. NOTE: a CPU
// pool takes and zeroes 2 MiB at least, which would be most of an input's time, so the pools of
// the last 32 shapes (more than kGeometries makes) are kept between inputs and zeroed for each.
class KeptPool final : public KvPool {
 public:
  static absl::StatusOr<std::unique_ptr<KvPool>> Create(const KvPoolShape& shape) {
    static auto* const kept = new std::vector<std::unique_ptr<KvPool>>;  // oldest first
    const auto same = [&shape](const std::unique_ptr<KvPool>& pool) {
      const KvPoolShape& other = pool->shape();
      return other.num_layers == shape.num_layers && other.num_kv_heads == shape.num_kv_heads &&
             other.head_dim == shape.head_dim && other.block_size == shape.block_size &&
             other.num_blocks == shape.num_blocks && other.dtype == shape.dtype;
    };
    auto it = std::find_if(kept->begin(), kept->end(), same);
    std::unique_ptr<KvPool> pool;
    if (it != kept->end()) {
      pool = std::move(*it);
      kept->erase(it);
    } else {
      absl::StatusOr<std::unique_ptr<KvPool>> created = CreateCpuKvPool(shape, {});
      if (!created.ok()) return created.status();
      pool = *std::move(created);
      if (kept->size() == 32) kept->erase(kept->begin());
    }
    const std::string zeros(shape.num_slots() * shape.token_bytes(), '\0');
    std::vector<int64_t> slots(shape.num_slots());
    for (int64_t s = 0; s < shape.num_slots(); ++s) slots[s] = s;
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      if (absl::Status status = pool->WriteKv(layer, slots, zeros, zeros); !status.ok()) {
        return status;
      }
    }
    KvPool* const inner = kept->emplace_back(std::move(pool)).get();
    return std::unique_ptr<KvPool>(new KeptPool(inner));
  }

 private:
  explicit KeptPool(KvPool* pool) : KvPool(pool->shape()), pool_(pool) {}

  absl::Status DoWriteKv(int layer, absl::Span<const int64_t> slots, const char* k,
                         const char* v) override {
    const size_t bytes = slots.size() * shape().token_bytes();
    return pool_->WriteKv(layer, slots, {k, bytes}, {v, bytes});
  }
  absl::Status DoReadKv(int layer, absl::Span<const int64_t> slots, char* k,
                        char* v) const override {
    const size_t bytes = slots.size() * shape().token_bytes();
    return pool_->ReadKv(layer, slots, {k, bytes}, {v, bytes});
  }
  absl::Status DoAttend(int layer, absl::Span<const SequenceLayout> sequences,
                        const AttentionParams& params, const char* q, char* out) const override {
    size_t queries = 0;
    for (const SequenceLayout& sequence : sequences) queries += sequence.num_queries;
    const size_t bytes = queries * params.num_q_heads * shape().head_dim * DTypeSize(shape().dtype);
    return pool_->Attend(layer, sequences, params, {q, bytes}, {out, bytes});
  }

  KvPool* const pool_;  // kept in Create's list past this pool's life
};

// A lease, signed; `forged` says whether a signed field was changed after.
struct DrawnLease {
  v1::BlockLease lease;
  bool forged = false;
};

DrawnLease DrawLease(FuzzedDataProvider& in, const v1::HostedRange& range) {
  const v1::ModelSpec& spec = range.model();
  DrawnLease drawn;
  v1::BlockLease& lease = drawn.lease;
  lease.set_session_id(absl::StrCat("s", in.ConsumeIntegralInRange(0, kSessions - 1)));
  *lease.mutable_model() = spec.id();
  if (in.ConsumeIntegralInRange(0, 15) == 0) lease.mutable_model()->set_version("v");
  const int num_blocks = in.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < num_blocks; ++i) {
    lease.add_blocks(Draw(in, 0, spec.num_blocks() - 1));
    lease.add_generations(in.ConsumeIntegralInRange(0, 3));
  }
  if (in.ConsumeIntegralInRange(0, 15) == 0) lease.add_generations(0);
  for (int slot = 0; slot < spec.num_shards(); ++slot) {
    lease.add_shard_incarnations(slot == range.slot() ? range.incarnation() : 7);
  }
  switch (in.ConsumeIntegralInRange(0, 15)) {
    case 0:
      lease.set_shard_incarnations(range.slot(), range.incarnation() + 1);
      break;
    case 1:
      lease.add_shard_incarnations(range.incarnation());
      break;
  }
  lease.set_writer_epoch(in.ConsumeIntegralInRange(0, 2));
  lease.set_writable_from(Draw(in, 0, num_blocks * spec.block_size()));
  *lease.mutable_expires_at() =
      ToProtoTimestamp(kNow + absl::Seconds(in.PickValueInArray({-5, 0, 600})));
  SignLease(kLeaseKey, &lease);
  switch (in.ConsumeIntegralInRange(0, 15)) {
    case 0:
      lease.mutable_signature()->back() ^= 1;
      drawn.forged = true;
      break;
    case 1:
      lease.set_writer_epoch(lease.writer_epoch() ^ 1);
      drawn.forged = true;
      break;
    case 2:
      lease.set_writable_from(lease.writable_from() ^ 1);
      drawn.forged = true;
      break;
    case 3:
      if (lease.generations_size() > 0) {
        lease.set_generations(0, lease.generations(0) ^ 1);
        drawn.forged = true;
      }
      break;
  }
  return drawn;
}

// The shard's K and V, every layer: [layer] -> bytes of all slots.
struct PoolContents {
  std::vector<std::string> k;
  std::vector<std::string> v;
  bool operator==(const PoolContents& other) const { return k == other.k && v == other.v; }
};

PoolContents ReadPool(const KvPool& pool) {
  const KvPoolShape& shape = pool.shape();
  std::vector<int64_t> slots(shape.num_slots());
  for (int64_t s = 0; s < shape.num_slots(); ++s) slots[s] = s;
  PoolContents contents;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    std::string& k = contents.k.emplace_back(shape.num_slots() * shape.token_bytes(), '\0');
    std::string& v = contents.v.emplace_back(k.size(), '\0');
    if (!pool.ReadKv(layer, slots, absl::MakeSpan(k), absl::MakeSpan(v)).ok()) {
      Fail("ReadKv of every slot failed");
    }
  }
  return contents;
}

// Fills `bytes` with a stream that differs from call to call.
void FillBytes(std::string& bytes, uint64_t& state) {
  for (char& c : bytes) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    c = static_cast<char>(state >> 56);
  }
}

// One session's writer, as the harness saw the shard admit it.
struct Writer {
  uint64_t epoch = 0;
  int32_t writable_from = 0;
  bool revoked = false;
};

struct Stream {
  v1::StepPlan plan;
  std::optional<StepBatch> batch;  // set once the plan and every lease were admitted
};

class StepFuzzer {
 public:
  StepFuzzer(FuzzedDataProvider& in, std::unique_ptr<HostedModel> model)
      : in_(in),
        model_(std::move(model)),
        spec_(model_->spec()),
        range_(model_->range()),
        floor_(spec_.num_blocks(), 0),
        revoked_(spec_.num_blocks(), 0) {}

  void Run() {
    for (int i = 0; i < kMaxActions && in_.remaining_bytes() > 0; ++i) {
      switch (in_.ConsumeIntegralInRange(0, 5)) {
        case 0:
        case 1:
          Open(streams_[in_.ConsumeIntegralInRange(0, 1)]);
          break;
        case 2:
        case 3:
          Layer(streams_[in_.ConsumeIntegralInRange(0, 1)]);
          break;
        case 4:
          Revoke();
          break;
        case 5:
          Copy();
          break;
      }
    }
  }

 private:
  int64_t TokenBytes() const { return model_->pool().shape().token_bytes(); }
  int BlockSize() const { return spec_.block_size(); }
  bool BlockInRange(int64_t block) const { return block >= 0 && block < spec_.num_blocks(); }

  // A new plan on `stream`: built and admitted as the service does, checked against the rules.
  void Open(Stream& stream) {
    stream = Stream{};
    v1::StepPlan& plan = stream.plan;
    *plan.mutable_model() = spec_.id();
    plan.set_slot(in_.ConsumeIntegralInRange(0, 15) == 0 ? range_.slot() + 1 : range_.slot());
    std::vector<bool> forged;
    const int num_sequences = in_.ConsumeIntegralInRange(0, 3);
    int64_t num_tokens = 0;
    for (int i = 0; i < num_sequences; ++i) {
      v1::SequenceStep& sequence = *plan.add_sequences();
      DrawnLease drawn = DrawLease(in_, range_);
      forged.push_back(drawn.forged);
      const int32_t capacity = drawn.lease.blocks_size() * BlockSize();
      *sequence.mutable_lease() = std::move(drawn.lease);
      sequence.set_context_len(Draw(in_, 1, std::max(1, capacity)));
      sequence.set_num_new_tokens(Draw(in_, 1, std::max(1, sequence.context_len())));
      num_tokens += sequence.num_new_tokens();
    }
    const int shape_tokens =
        static_cast<int>(std::clamp<int64_t>(num_tokens, 0, std::numeric_limits<int32_t>::max()));
    *plan.mutable_shapes() = LayerShapesFor(spec_, range_.heads(), shape_tokens);
    switch (in_.ConsumeIntegralInRange(0, 15)) {
      case 0:
        plan.mutable_shapes()->set_num_tokens(plan.shapes().num_tokens() ^ 1);
        break;
      case 1:
        plan.mutable_shapes()->set_head_dim(plan.shapes().head_dim() ^ 1);
        break;
      case 2:
        plan.mutable_shapes()->set_dtype(spec_.dtype() == v1::DTYPE_FP32 ? v1::DTYPE_BF16
                                                                         : v1::DTYPE_FP32);
        break;
    }

    absl::StatusOr<StepBatch> batch = StepBatch::Build(plan, *model_);
    const bool plan_valid = PlanValid(plan, num_tokens);
    if (batch.ok() != plan_valid) {
      Fail(absl::StrCat("StepBatch::Build ", batch.ok() ? "accepted" : "refused",
                        " a plan the rules ", plan_valid ? "accept" : "refuse", ": ",
                        batch.status().ToString(), "\n", plan.DebugString()));
    }
    if (!batch.ok()) return;
    CheckBatch(plan, *batch);
    for (int i = 0; i < plan.sequences_size(); ++i) {
      const v1::SequenceStep& sequence = plan.sequences(i);
      const int32_t first_write = sequence.context_len() - sequence.num_new_tokens();
      const bool admissible = !forged[i] && Admissible(sequence.lease(), first_write);
      const absl::Status admitted =
          model_->AdmitLease(sequence.lease(), first_write, kLeaseKey, kNow);
      if (admitted.ok() != admissible) {
        Fail(absl::StrCat("AdmitLease ", admitted.ok() ? "admitted" : "refused",
                          " a lease the rules ", admissible ? "admit" : "refuse",
                          " (forged: ", forged[i] ? "yes" : "no", ", first write ", first_write,
                          "): ", admitted.ToString(), "\n", sequence.lease().DebugString()));
      }
      if (!admitted.ok()) return;  // the stream ends
      Admit(sequence.lease());
    }
    stream.batch = *std::move(batch);
  }

  // The plan rules of step_batch.h.
  bool PlanValid(const v1::StepPlan& plan, int64_t num_tokens) const {
    if (plan.slot() != range_.slot() || plan.sequences().empty()) return false;
    absl::flat_hash_set<std::string> sessions;
    for (const v1::SequenceStep& sequence : plan.sequences()) {
      if (sequence.num_new_tokens() < 1 || sequence.num_new_tokens() > sequence.context_len() ||
          sequence.context_len() > int64_t{sequence.lease().blocks_size()} * BlockSize() ||
          !sessions.insert(sequence.lease().session_id()).second) {
        return false;
      }
    }
    if (num_tokens > StepBatch::kMaxTokens) return false;
    const v1::LayerShapes want =
        LayerShapesFor(spec_, range_.heads(), static_cast<int>(num_tokens));
    const v1::LayerShapes& got = plan.shapes();
    return got.num_tokens() == want.num_tokens() && got.num_q_heads() == want.num_q_heads() &&
           got.num_kv_heads() == want.num_kv_heads() && got.head_dim() == want.head_dim() &&
           got.dtype() == want.dtype();
  }

  // The batch is the plan's: its block tables, positions and slots.
  void CheckBatch(const v1::StepPlan& plan, const StepBatch& batch) const {
    std::vector<int64_t> slots = ExpectedSlots(plan);
    if (std::vector<int64_t>(batch.slots().begin(), batch.slots().end()) != slots) {
      Fail("StepBatch's slots are not the plan's new tokens' slots");
    }
    if (batch.sequences().size() != static_cast<size_t>(plan.sequences_size())) {
      Fail("StepBatch has another number of sequences than the plan");
    }
    for (int i = 0; i < plan.sequences_size(); ++i) {
      const SequenceLayout& layout = batch.sequences()[i];
      const v1::SequenceStep& sequence = plan.sequences(i);
      if (!std::equal(layout.block_table.begin(), layout.block_table.end(),
                      sequence.lease().blocks().begin(), sequence.lease().blocks().end()) ||
          layout.context_len != sequence.context_len() ||
          layout.num_queries != sequence.num_new_tokens()) {
        Fail(absl::StrCat("StepBatch's sequence ", i, " is not the plan's"));
      }
    }
    const int64_t q_bytes = int64_t{QHeads()} * spec_.head_dim() * DTypeBytes(spec_.dtype());
    if (batch.num_q_heads() != QHeads() ||
        batch.out_bytes() != static_cast<int64_t>(slots.size()) * q_bytes) {
      Fail("StepBatch's query heads or output size are not the range's");
    }
  }

  int QHeads() const { return NumHeads(range_.heads()) * GqaGroupSize(spec_); }

  // Token p of a sequence lives in slot blocks[p / B] * B + p % B.
  std::vector<int64_t> ExpectedSlots(const v1::StepPlan& plan) const {
    std::vector<int64_t> slots;
    for (const v1::SequenceStep& sequence : plan.sequences()) {
      for (int64_t p = sequence.context_len() - sequence.num_new_tokens();
           p < sequence.context_len(); ++p) {
        slots.push_back(int64_t{sequence.lease().blocks(p / BlockSize())} * BlockSize() +
                        p % BlockSize());
      }
    }
    return slots;
  }

  // The lease rules of hosted_model.h against what was admitted and revoked so far (the
  // signature aside).
  bool Admissible(const v1::BlockLease& lease, int32_t first_write) const {
    if (!SameModel(lease.model(), spec_.id()) ||
        lease.shard_incarnations_size() != spec_.num_shards() ||
        lease.shard_incarnations(range_.slot()) != range_.incarnation() ||
        FromProtoTimestamp(lease.expires_at()) < kNow ||
        lease.blocks_size() != lease.generations_size()) {
      return false;
    }
    for (int32_t block : lease.blocks()) {
      if (!BlockInRange(block)) return false;
    }
    if (!Current(lease)) return false;
    auto it = writers_.find(lease.session_id());
    const bool newer = it == writers_.end() || lease.writer_epoch() > it->second.epoch;
    const int32_t writable_from =
        newer ? lease.writable_from() : std::max(it->second.writable_from, lease.writable_from());
    return first_write >= writable_from;
  }

  // What CheckLeaseCurrent must accept: no block below a generation admitted or revoked, and
  // neither a revoked session nor an older writer epoch.
  bool Current(const v1::BlockLease& lease) const {
    for (int i = 0; i < lease.blocks_size(); ++i) {
      if (lease.generations(i) < floor_[lease.blocks(i)]) return false;
    }
    auto it = writers_.find(lease.session_id());
    return it == writers_.end() ||
           (!it->second.revoked && lease.writer_epoch() >= it->second.epoch);
  }

  void Admit(const v1::BlockLease& lease) {
    for (int i = 0; i < lease.blocks_size(); ++i) {
      floor_[lease.blocks(i)] = std::max(floor_[lease.blocks(i)], lease.generations(i));
    }
    auto [it, inserted] = writers_.try_emplace(lease.session_id());
    Writer& writer = it->second;
    if (inserted || lease.writer_epoch() > writer.epoch) {
      writer = Writer{.epoch = lease.writer_epoch(), .writable_from = lease.writable_from()};
    } else {
      writer.writable_from = std::max(writer.writable_from, lease.writable_from());
    }
  }

  // One layer message on `stream`, as the service runs it.
  void Layer(Stream& stream) {
    if (!stream.batch.has_value()) return;
    const StepBatch& batch = *stream.batch;
    v1::LayerTensors layer;
    layer.set_layer(Draw(in_, 0, spec_.num_layers() - 1));
    const int64_t tokens = static_cast<int64_t>(batch.slots().size());
    const int64_t q_bytes = batch.out_bytes();
    const int64_t kv_bytes = tokens * TokenBytes();
    const int64_t element = DTypeBytes(spec_.dtype());
    for (auto [tensor, bytes] :
         {std::pair{layer.mutable_q(), q_bytes}, std::pair{layer.mutable_k(), kv_bytes},
          std::pair{layer.mutable_v(), kv_bytes}}) {
      const int64_t size = in_.PickValueInArray<int64_t>(
          {bytes, bytes, bytes, bytes, bytes - element, bytes + element, bytes - 1, 0});
      tensor->resize(std::max<int64_t>(0, size));
      FillBytes(*tensor, fill_);
    }
    bool current = true;
    for (const v1::SequenceStep& sequence : stream.plan.sequences()) {
      current = current && Current(sequence.lease());
    }
    const bool acceptable = layer.layer() >= 0 && layer.layer() < spec_.num_layers() && current &&
                            static_cast<int64_t>(layer.q().size()) == q_bytes &&
                            static_cast<int64_t>(layer.k().size()) == kv_bytes &&
                            static_cast<int64_t>(layer.v().size()) == kv_bytes;

    const PoolContents before = ReadPool(model_->pool());
    std::string out;
    const absl::Status status = RunLayer(stream, layer, out);
    if (status.ok() != acceptable) {
      Fail(absl::StrCat("a layer ", status.ok() ? "was accepted" : "was refused",
                        " that the rules ", acceptable ? "accept" : "refuse", ": ",
                        status.ToString()));
    }
    const PoolContents after = ReadPool(model_->pool());
    if (!status.ok()) {
      if (!(after == before))
        Fail(absl::StrCat("a refused layer changed the pool: ", status.ToString()));
      stream.batch.reset();  // the stream ends
      return;
    }
    if (static_cast<int64_t>(out.size()) != q_bytes) Fail("the layer's output has another size");
    CheckWrites(batch.slots(), layer, before, after);
  }

  // AttentionServiceImpl::RunLayer's checks and work, in its order.
  absl::Status RunLayer(const Stream& stream, const v1::LayerTensors& layer, std::string& out) {
    if (layer.layer() < 0 || layer.layer() >= spec_.num_layers()) {
      return absl::InvalidArgumentError("layer.layer");
    }
    for (const v1::SequenceStep& sequence : stream.plan.sequences()) {
      if (absl::Status status = model_->CheckLeaseCurrent(sequence.lease()); !status.ok()) {
        return status;
      }
    }
    const StepBatch& batch = *stream.batch;
    if (static_cast<int64_t>(layer.q().size()) != batch.out_bytes()) {
      return absl::InvalidArgumentError("q");
    }
    KvPool& pool = model_->pool();
    if (absl::Status status = pool.WriteKv(layer.layer(), batch.slots(), layer.k(), layer.v());
        !status.ok()) {
      return status;
    }
    out.resize(batch.out_bytes());
    return pool.Attend(layer.layer(), batch.sequences(),
                       AttentionParams{.num_q_heads = batch.num_q_heads()}, layer.q(),
                       absl::MakeSpan(out));
  }

  // An accepted layer changed only its new tokens' slots of its layer, to what it sent.
  void CheckWrites(absl::Span<const int64_t> slots, const v1::LayerTensors& layer,
                   const PoolContents& before, const PoolContents& after) const {
    const int64_t row = TokenBytes();
    absl::flat_hash_map<int64_t, std::vector<int64_t>> rows_of;  // slot -> rows sent for it
    for (size_t i = 0; i < slots.size(); ++i) rows_of[slots[i]].push_back(static_cast<int64_t>(i));
    for (int l = 0; l < spec_.num_layers(); ++l) {
      for (int64_t slot = 0; slot < static_cast<int64_t>(after.k[l].size()) / row; ++slot) {
        const std::string_view k(after.k[l].data() + slot * row, row);
        const std::string_view v(after.v[l].data() + slot * row, row);
        auto it = rows_of.find(slot);
        if (l != layer.layer() || it == rows_of.end()) {
          if (k != std::string_view(before.k[l]).substr(slot * row, row) ||
              v != std::string_view(before.v[l]).substr(slot * row, row)) {
            Fail(absl::StrCat("layer ", layer.layer(), " changed slot ", slot, " of layer ", l,
                              ", which is none of its new tokens'"));
          }
          continue;
        }
        bool stored = false;
        for (int64_t i : it->second) {
          stored = stored || (k == std::string_view(layer.k()).substr(i * row, row) &&
                              v == std::string_view(layer.v()).substr(i * row, row));
        }
        if (!stored) {
          Fail(absl::StrCat("layer ", l, " slot ", slot, " does not hold the k and v sent for it"));
        }
      }
    }
  }

  void Revoke() {
    v1::RevokeRequest request;
    *request.mutable_model() = spec_.id();
    request.set_incarnation(range_.incarnation());
    const int num_blocks = in_.ConsumeIntegralInRange(0, 3);
    for (int i = 0; i < num_blocks; ++i) {
      request.add_blocks(Draw(in_, 0, spec_.num_blocks() - 1));
      request.add_generations(in_.ConsumeIntegralInRange(0, 4));
    }
    if (in_.ConsumeIntegralInRange(0, 15) == 0) request.add_generations(1);
    if (in_.ConsumeBool()) {
      v1::RevokedSession* session = request.add_sessions();
      session->set_session_id(absl::StrCat("s", in_.ConsumeIntegralInRange(0, kSessions - 1)));
      *session->mutable_expires_at() = ToProtoTimestamp(kNow + absl::Minutes(10));
    }
    bool valid = request.blocks_size() == request.generations_size();
    for (int32_t block : request.blocks()) valid = valid && BlockInRange(block);

    const PoolContents before = ReadPool(model_->pool());
    const absl::Status status = model_->Revoke(request);
    if (status.ok() != valid) {
      Fail(absl::StrCat("Revoke ", status.ok() ? "accepted" : "refused", " a request the rules ",
                        valid ? "accept" : "refuse", ": ", status.ToString()));
    }
    if (!(ReadPool(model_->pool()) == before)) Fail("Revoke changed the pool");
    if (!status.ok()) return;
    for (int i = 0; i < request.blocks_size(); ++i) {
      const int32_t block = request.blocks(i);
      floor_[block] = std::max(floor_[block], request.generations(i));
      revoked_[block] = std::max(revoked_[block], request.generations(i));
    }
    for (const v1::RevokedSession& session : request.sessions()) {
      writers_[session.session_id()].revoked = true;
    }
  }

  void Copy() {
    google::protobuf::RepeatedPtrField<v1::BlockCopy> copies;
    const int num_copies = in_.ConsumeIntegralInRange(1, 2);
    bool valid = true;
    for (int i = 0; i < num_copies; ++i) {
      v1::BlockCopy& copy = *copies.Add();
      copy.set_source(Draw(in_, 0, spec_.num_blocks() - 1));
      copy.set_target(Draw(in_, 0, spec_.num_blocks() - 1));
      copy.set_num_tokens(Draw(in_, 1, BlockSize()));
      copy.set_source_generation(in_.ConsumeIntegralInRange(0, 4));
      valid = valid && BlockInRange(copy.source()) && BlockInRange(copy.target()) &&
              copy.source() != copy.target() && copy.num_tokens() >= 1 &&
              copy.num_tokens() <= BlockSize() &&
              revoked_[copy.source()] <= copy.source_generation();
    }
    const PoolContents before = ReadPool(model_->pool());
    const absl::Status status = model_->CopyBlocks(copies);
    if (status.ok() != valid) {
      Fail(absl::StrCat("CopyBlocks ", status.ok() ? "accepted" : "refused", " copies the rules ",
                        valid ? "accept" : "refuse", ": ", status.ToString()));
    }
    PoolContents expected = before;
    if (status.ok()) {
      const int64_t row = TokenBytes();
      for (const v1::BlockCopy& copy : copies) {
        for (int l = 0; l < spec_.num_layers(); ++l) {
          for (std::string* tensor : {&expected.k[l], &expected.v[l]}) {
            const std::string source =
                tensor->substr(int64_t{copy.source()} * BlockSize() * row, copy.num_tokens() * row);
            tensor->replace(int64_t{copy.target()} * BlockSize() * row, source.size(), source);
          }
        }
      }
    }
    if (!(ReadPool(model_->pool()) == expected)) {
      Fail(status.ok() ? "CopyBlocks did not copy exactly its blocks' tokens"
                       : "a refused CopyBlocks changed the pool");
    }
  }

  FuzzedDataProvider& in_;
  const std::unique_ptr<HostedModel> model_;
  const v1::ModelSpec& spec_;
  const v1::HostedRange& range_;
  std::vector<uint64_t> floor_;    // per block: the highest generation admitted or revoked
  std::vector<uint64_t> revoked_;  // per block: the highest generation revoked
  absl::flat_hash_map<std::string, Writer> writers_;
  Stream streams_[2];
  uint64_t fill_ = 1;
};

}  // namespace
}  // namespace kvtier

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kvtier::SetLogSink([](absl::string_view) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const kvtier::v1::HostedRange range = kvtier::DrawRange(in);
  absl::StatusOr<std::unique_ptr<kvtier::HostedModel>> model =
      kvtier::HostedModel::Create(range, int64_t{1} << 20, &kvtier::KeptPool::Create);
  if (!model.ok()) kvtier::Fail(absl::StrCat("hosting a valid range: ", model.status().ToString()));
  kvtier::StepFuzzer(in, *std::move(model)).Run();
  return 0;
}
