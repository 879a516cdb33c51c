// Fuzzes the coordinator's request handling: sequences of SessionService, AdminService and
// ShardRegistryService requests applied to an in-process Coordinator, as its gRPC edges would
// (session_service.cc, admin_service.cc), with shards that answer control calls inline
// (FakeShardControl, which the input may make fail for an address) and a clock the input moves.
//
// An input (read with FuzzedDataProvider) chooses each call and its fields, up to 48 calls.
// Requests mostly name what earlier answers made (sessions with their tenant, writer and
// context length; shards; the models registered), so calls reach deep; some name the wrong
// tenant, writer or context length, unknown ids or bad values. Besides a crash, a sanitizer
// report or a leak, the harness aborts, saying why, when after a call
//   - a model's blocks do not add up: used + free + cached != num_blocks (GetStats);
//   - a call was refused, having called no shard, and changed what GetStats reports;
//   - a lease granted is not signed with the key the shards got, names a block out of range or
//     twice, has a generation per block and an incarnation per slot, or holds fewer tokens
//     than its writable_from;
//   - two sessions' latest leases name the same block at the same generation and placement,
//     and it is not read-only (wholly below writable_from) in both: two writers of one block.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/log.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/time_convert.h"
#include "service/coordinator.h"
#include "tests/service/fake_shard_control.h"

namespace kvtier {
namespace {

constexpr int kMaxCalls = 48;
constexpr int kMaxSessions = 8;
const char* const kAddresses[] = {"10.0.0.1:5000", "10.0.0.2:5000", "10.0.0.3:5000"};
const char* const kTenants[] = {"t0", "t1"};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "coordinator_fuzzer: %s\n", what.c_str());
  std::abort();
}

// A session as its front-end knows it.
struct KnownSession {
  std::string id;
  std::string tenant;
  uint64_t writer = 0;
  int32_t context_len = 0;
  std::optional<v1::BlockLease> lease;  // the latest, while it is current
};

class CoordinatorFuzzer {
 public:
  explicit CoordinatorFuzzer(FuzzedDataProvider& in)
      : in_(in), coordinator_(Options(in, &now_, shard_control_)) {}

  void Run() {
    for (int i = 0; i < kMaxCalls && in_.remaining_bytes() > 0; ++i) Step();
  }

 private:
  static CoordinatorOptions Options(FuzzedDataProvider& in, const absl::Time* now,
                                    std::shared_ptr<ShardControl> shard_control) {
    CoordinatorOptions options;
    options.clock = [now] { return *now; };
    options.shard_control = std::move(shard_control);
    options.max_model_metadata_bytes = int64_t{1} << 20;
    options.evict_retained_sessions = in.ConsumeBool();
    options.eviction_policy = in.PickValueInArray({"slru", "lru", "lfu-aging"});
    if (in.ConsumeBool()) options.public_tenant = kTenants[0];
    return options;
  }

  void Step() {
    switch (in_.ConsumeIntegralInRange(0, 21)) {
      case 0:
      case 1:
        return Call("RegisterModel", [&] { return RegisterModel(); });
      case 2:
        return Call("RetireModel", [&] {
          v1::RetireModelRequest request;
          *request.mutable_model() = PickModel();
          request.set_mode(static_cast<v1::RetireMode>(in_.ConsumeIntegralInRange(0, 3)));
          return CallNow(&Coordinator::RetireModel, request).status();
        });
      case 3:
      case 4:
        return Call("RegisterShard", [&] { return RegisterShard(); });
      case 5:
        return Call("Heartbeat", [&] { return Heartbeat(); });
      case 6:
        return Call("DeregisterShard", [&] {
          v1::DeregisterShardRequest request;
          request.set_shard_id(PickShard());
          return coordinator_.DeregisterShard(request);
        });
      case 7:
      case 8:
        return Call("OpenSession", [&] { return OpenSession(); });
      case 9:
        return Call("GetSession", [&] {
          v1::GetSessionRequest request;
          NameSession(request);
          return coordinator_.GetSession(request).status();
        });
      case 10:
        return Call("TakeOverSession", [&] { return TakeOver(); });
      case 11:
        return Call("RenewLease", [&] { return RenewLease(); });
      case 12:
      case 13:
      case 14:
        return Call("Extend", [&] { return Extend(); });
      case 15:
        return Call("EndTurn", [&] { return EndTurn(); });
      case 16:
        return Call("CloseSession", [&] {
          v1::CloseSessionRequest request;
          NameSession(request);
          return coordinator_.CloseSession(request);
        });
      case 17:
        return Call("ForkSession", [&] { return Fork(); });
      case 18:
        return Call("Invalidate", [&] { return Invalidate(); });
      case 19:
        return Advance();
      case 20:
        return ScriptShardFailure();
      case 21:
        return Call("GetStats", [&] {
          coordinator_.GetStats();
          return absl::OkStatus();
        });
    }
  }

  // Runs `call` and checks the invariants after it.
  template <typename F>
  void Call(const char* name, F call) {
    const v1::GetStatsResponse before = coordinator_.GetStats();
    shard_control_->ClearCalls();
    const absl::Status status = call();
    const v1::GetStatsResponse after = coordinator_.GetStats();
    const bool called_shards =
        !shard_control_->revokes().empty() || !shard_control_->copies().empty();
    if (!status.ok() && !called_shards &&
        !google::protobuf::util::MessageDifferencer::Equals(before, after)) {
      Fail(absl::StrCat(name, " was refused (", status.ToString(),
                        ") but changed the stats:\nbefore ", before.DebugString(), "\nafter ",
                        after.DebugString()));
    }
    CheckStats(name, after);
    CheckLeases(name);
  }

  template <typename Request, typename Response>
  absl::StatusOr<Response> CallNow(void (Coordinator::*method)(const Request&, Callback<Response>),
                                   const Request& request) {
    std::optional<absl::StatusOr<Response>> answer;
    (coordinator_.*method)(
        request, [&answer](absl::StatusOr<Response> result) { answer = std::move(result); });
    if (!answer.has_value()) Fail("a call's callback had not run when it returned");
    return *std::move(answer);
  }

  // Models, shards, sessions, tenants and tokens as requests name them: mostly a registered
  // model.
  v1::ModelId PickModel() {
    if (!specs_.empty() && in_.ConsumeIntegralInRange(0, 7) != 0) {
      auto it = specs_.begin();
      std::advance(it, in_.ConsumeIntegralInRange<size_t>(0, specs_.size() - 1));
      return it->second.id();
    }
    v1::ModelId id;
    id.set_name(in_.PickValueInArray({"m", "n", ""}));
    id.set_version(in_.PickValueInArray({"", "v1"}));
    return id;
  }

  uint64_t PickShard() {
    if (shards_.empty() || in_.ConsumeIntegralInRange(0, 7) == 0) {
      return in_.ConsumeIntegralInRange<uint64_t>(0, 9);
    }
    return shards_[in_.ConsumeIntegralInRange<size_t>(0, shards_.size() - 1)];
  }

  std::string PickTenant() {
    switch (in_.ConsumeIntegralInRange(0, 15)) {
      case 0:
        return "";
      case 1:
        return std::string(129, 't');
      default:
        return kTenants[in_.ConsumeBool()];
    }
  }

  // A known session, or none (null) and an id no session has.
  KnownSession* PickSession() {
    if (sessions_.empty() || in_.ConsumeIntegralInRange(0, 15) == 0) return nullptr;
    return &sessions_[in_.ConsumeIntegralInRange<size_t>(0, sessions_.size() - 1)];
  }

  // Names a session in `request` (its id and tenant, now and then another tenant); the
  // session, if known.
  template <typename Request>
  KnownSession* NameSession(Request& request) {
    KnownSession* session = PickSession();
    request.set_session_id(session != nullptr ? session->id : "no-such-session");
    request.set_tenant(session != nullptr && in_.ConsumeIntegralInRange(0, 15) != 0
                           ? session->tenant
                           : PickTenant());
    return session;
  }

  // As NameSession, with its writer (now and then another).
  template <typename Request>
  KnownSession* NameWriter(Request& request) {
    KnownSession* session = NameSession(request);
    request.set_writer(session != nullptr && in_.ConsumeIntegralInRange(0, 15) != 0
                           ? session->writer
                           : in_.ConsumeIntegral<uint64_t>());
    return session;
  }

  std::vector<int32_t> PickTokens(int max) {
    std::vector<int32_t> tokens(in_.ConsumeIntegralInRange(0, max));
    for (int32_t& token : tokens) {
      token = in_.ConsumeIntegralInRange(0, 31) == 0 ? -1 : in_.ConsumeIntegralInRange(0, 2);
    }
    return tokens;
  }

  int32_t PickCount(int32_t high) {
    switch (in_.ConsumeIntegralInRange(0, 15)) {
      case 0:
        return -1;
      case 1:
        return std::numeric_limits<int32_t>::max();
      default:
        return in_.ConsumeIntegralInRange(0, high);
    }
  }

  KnownSession& Remember(const v1::SessionInfo& info, const std::string& tenant,
                         const v1::WriterGrant& grant) {
    if (sessions_.size() == kMaxSessions) sessions_.erase(sessions_.begin());
    return sessions_.emplace_back(KnownSession{.id = info.session_id(),
                                               .tenant = tenant,
                                               .writer = grant.writer(),
                                               .context_len = info.context_len(),
                                               .lease = grant.lease()});
  }

  absl::Status RegisterModel() {
    v1::RegisterModelRequest request;
    v1::ModelSpec& spec = *request.mutable_model();
    *spec.mutable_id() = PickModel();
    spec.set_num_layers(in_.ConsumeIntegralInRange(1, 2));
    spec.set_num_kv_heads(in_.ConsumeIntegralInRange(1, 4));
    spec.set_num_q_heads(spec.num_kv_heads() * in_.ConsumeIntegralInRange(1, 2));
    spec.set_head_dim(in_.PickValueInArray({8, 64}));
    spec.set_dtype(in_.ConsumeIntegralInRange(0, 15) == 0 ? v1::DTYPE_UNSPECIFIED : v1::DTYPE_BF16);
    spec.set_block_size(in_.ConsumeIntegralInRange(0, 15) == 0 ? in_.PickValueInArray({0, 513})
                                                               : in_.PickValueInArray({1, 2, 4}));
    spec.set_num_blocks(
        in_.ConsumeIntegralInRange(0, 15) == 0
            ? in_.PickValueInArray({0, 1 << 20, std::numeric_limits<int32_t>::max()})
            : in_.ConsumeIntegralInRange(1, 24));
    spec.set_num_shards(in_.ConsumeIntegralInRange(0, 7) == 0
                            ? spec.num_kv_heads() + 1
                            : in_.ConsumeIntegralInRange(1, std::min(2, spec.num_kv_heads())));
    request.set_retire_others(static_cast<v1::RetireMode>(in_.ConsumeIntegralInRange(0, 3)));
    return CallNow(&Coordinator::RegisterModel, request).status();
  }

  absl::Status RegisterShard() {
    v1::RegisterShardRequest request;
    request.set_address(in_.ConsumeIntegralInRange(0, 15) == 0
                            ? in_.PickValueInArray({"", "0.0.0.0:5000", "no-port"})
                            : kAddresses[in_.ConsumeIntegralInRange(0, 2)]);
    request.set_capacity_bytes(
        in_.PickValueInArray<int64_t>({int64_t{1} << 30, int64_t{1} << 30, 1 << 16, 0, -1}));
    absl::StatusOr<v1::ShardAssignment> assignment = coordinator_.RegisterShard(request);
    if (!assignment.ok()) return assignment.status();
    lease_key_ = assignment->lease_key();
    shards_.push_back(assignment->shard_id());
    if (in_.ConsumeIntegralInRange(0, 7) == 0) return absl::OkStatus();
    return ReportReady(*assignment);
  }

  // A heartbeat that reports every range of `assignment` ready.
  absl::Status ReportReady(const v1::ShardAssignment& assignment) {
    v1::HeartbeatRequest request;
    request.set_shard_id(assignment.shard_id());
    for (const v1::HostedRange& range : assignment.ranges()) {
      request.add_ready_incarnations(range.incarnation());
    }
    return coordinator_.Heartbeat(request).status();
  }

  absl::Status Heartbeat() {
    v1::HeartbeatRequest request;
    request.set_shard_id(PickShard());
    absl::StatusOr<v1::ShardAssignment> assignment = coordinator_.Heartbeat(request);
    if (!assignment.ok() || in_.ConsumeBool()) return assignment.status();
    return ReportReady(*assignment);
  }

  absl::Status OpenSession() {
    v1::OpenSessionRequest request;
    *request.mutable_model() = PickModel();
    request.set_tenant(PickTenant());
    absl::StatusOr<v1::OpenSessionResponse> opened = coordinator_.OpenSession(request);
    if (!opened.ok()) return opened.status();
    Remember(opened->session(), request.tenant(), opened->grant());
    return absl::OkStatus();
  }

  absl::Status TakeOver() {
    v1::TakeOverSessionRequest request;
    KnownSession* session = NameSession(request);
    absl::StatusOr<v1::TakeOverSessionResponse> taken = coordinator_.TakeOverSession(request);
    if (!taken.ok()) return taken.status();
    if (session == nullptr) Fail("TakeOverSession took over a session no one opened");
    session->writer = taken->grant().writer();
    session->context_len = taken->session().context_len();
    session->lease = taken->grant().lease();
    return absl::OkStatus();
  }

  absl::Status RenewLease() {
    v1::RenewLeaseRequest request;
    KnownSession* session = NameWriter(request);
    absl::StatusOr<v1::RenewLeaseResponse> renewed = coordinator_.RenewLease(request);
    if (!renewed.ok()) return renewed.status();
    if (session == nullptr) Fail("RenewLease renewed a session no one opened");
    session->context_len = renewed->context_len();
    session->lease = renewed->lease();
    return absl::OkStatus();
  }

  absl::Status Extend() {
    v1::ExtendRequest request;
    KnownSession* session = NameWriter(request);
    request.set_expected_context_len(session != nullptr && in_.ConsumeIntegralInRange(0, 15) != 0
                                         ? session->context_len
                                         : PickCount(8));
    for (int32_t token : PickTokens(6)) request.add_tokens(token);
    for (int32_t token : PickTokens(12)) request.add_next_tokens(token);
    request.set_reserve_tokens(PickCount(8));
    absl::StatusOr<v1::ExtendResponse> extended = coordinator_.Extend(request);
    if (!extended.ok()) return extended.status();
    if (session == nullptr) Fail("Extend extended a session no one opened");
    session->context_len = extended->context_len();
    session->lease = extended->lease();
    return absl::OkStatus();
  }

  absl::Status EndTurn() {
    v1::EndTurnRequest request;
    KnownSession* session = NameWriter(request);
    request.set_expected_context_len(session != nullptr ? session->context_len : 0);
    for (int32_t token : PickTokens(6)) request.add_tokens(token);
    *request.mutable_retain_for() = ToProtoDuration(
        in_.PickValueInArray({absl::ZeroDuration(), absl::Seconds(1), absl::Minutes(10),
                              absl::Seconds(-1), absl::Hours(25)}));
    absl::StatusOr<v1::EndTurnResponse> ended = CallNow(&Coordinator::EndTurn, request);
    if (!ended.ok()) return ended.status();
    if (session == nullptr) Fail("EndTurn ended a turn of a session no one opened");
    session->context_len = ended->context_len();
    // NOTE: the lease still names the committed tokens as writable; the next one will not.
    session->lease.reset();
    return absl::OkStatus();
  }

  absl::Status Fork() {
    v1::ForkSessionRequest request;
    NameSession(request);
    absl::StatusOr<v1::ForkSessionResponse> forked = CallNow(&Coordinator::ForkSession, request);
    if (!forked.ok()) return forked.status();
    Remember(forked->session(), request.tenant(), forked->grant());
    return absl::OkStatus();
  }

  absl::Status Invalidate() {
    switch (in_.ConsumeIntegralInRange(0, 3)) {
      case 0: {
        v1::InvalidateSessionRequest request;
        NameSession(request);
        return CallNow(&Coordinator::InvalidateSession, request).status();
      }
      case 1: {
        v1::InvalidatePrefixRequest request;
        *request.mutable_model() = PickModel();
        request.set_tenant(PickTenant());
        for (int32_t token : PickTokens(8)) request.add_tokens(token);
        return CallNow(&Coordinator::InvalidatePrefix, request).status();
      }
      case 2: {
        v1::InvalidateTenantRequest request;
        request.set_tenant(PickTenant());
        return CallNow(&Coordinator::InvalidateTenant, request).status();
      }
      default: {
        v1::InvalidateModelRequest request;
        *request.mutable_model() = PickModel();
        return CallNow(&Coordinator::InvalidateModel, request).status();
      }
    }
  }

  // Moves the clock, the shards heartbeating first or not, then sweeps.
  void Advance() {
    now_ += in_.PickValueInArray(
        {absl::Seconds(1), absl::Seconds(6), absl::Minutes(11), absl::Hours(25)});
    if (in_.ConsumeBool()) {
      for (uint64_t shard : shards_) {
        v1::HeartbeatRequest request;
        request.set_shard_id(shard);
        coordinator_.Heartbeat(request).IgnoreError();  // a shard dropped answers NOT_FOUND
      }
    }
    Call("Sweep", [&] {
      coordinator_.Sweep();
      return absl::OkStatus();
    });
  }

  // From now on one address's revocations or copies fail (a lost shard, or a copy refused
  // because its source was invalidated), or succeed again.
  void ScriptShardFailure() {
    const std::string address = kAddresses[in_.ConsumeIntegralInRange(0, 2)];
    const absl::Status status = in_.PickValueInArray<absl::Status>(
        {absl::OkStatus(), absl::UnavailableError("lost"),
         WithReason(absl::FailedPreconditionError("invalidated"), v1::ERROR_REASON_INVALIDATED)});
    if (in_.ConsumeBool()) {
      shard_control_->FailRevokes(address, status);
    } else {
      shard_control_->FailCopies(address, status);
    }
  }

  void CheckStats(const char* call, const v1::GetStatsResponse& stats) {
    specs_.clear();
    for (const v1::ModelStats& model : stats.models()) {
      if (model.blocks_used() < 0 || model.blocks_free() < 0 || model.blocks_cached() < 0 ||
          model.blocks_used() + model.blocks_free() + model.blocks_cached() !=
              model.model().num_blocks()) {
        Fail(absl::StrCat("after ", call, ": model ", ModelIdString(model.model().id()),
                          "'s blocks do not add up: ", model.blocks_used(), " used + ",
                          model.blocks_free(), " free + ", model.blocks_cached(),
                          " cached != ", model.model().num_blocks()));
      }
      specs_[ModelIdString(model.model().id())] = model.model();
    }
  }

  void CheckLeases(const char* call) {
    // (model, placement, block, generation) -> the session, and whether it may write the block.
    using BlockKey = std::tuple<std::string, std::string, int32_t, uint64_t>;
    absl::flat_hash_map<BlockKey, std::pair<const KnownSession*, bool>> holders;
    for (KnownSession& session : sessions_) {
      if (!session.lease.has_value()) continue;
      const v1::BlockLease& lease = *session.lease;
      auto spec = specs_.find(ModelIdString(lease.model()));
      if (spec == specs_.end()) {
        // The version was removed: a later one of the same name and version is another model.
        session.lease.reset();
        continue;
      }
      CheckLease(call, session, lease, spec->second);
      const std::string placement = absl::StrJoin(lease.shard_incarnations(), ",");
      for (int i = 0; i < lease.blocks_size(); ++i) {
        const bool writable = int64_t{i + 1} * spec->second.block_size() > lease.writable_from();
        const BlockKey key{ModelIdString(lease.model()), placement, lease.blocks(i),
                           lease.generations(i)};
        auto [it, inserted] = holders.try_emplace(key, &session, writable);
        if (!inserted && (writable || it->second.second)) {
          Fail(absl::StrCat("after ", call, ": sessions ", it->second.first->id, " and ",
                            session.id, " both lease block ", lease.blocks(i), " at generation ",
                            lease.generations(i), ", and it is writable for one of them"));
        }
      }
    }
  }

  void CheckLease(const char* call, const KnownSession& session, const v1::BlockLease& lease,
                  const v1::ModelSpec& spec) {
    const std::string where = absl::StrCat("after ", call, ": session ", session.id, "'s lease ");
    if (!lease_key_.empty() && !LeaseSignatureValid(lease_key_, lease)) {
      Fail(where + "is not signed with the shards' lease key");
    }
    if (lease.session_id() != session.id || lease.generations_size() != lease.blocks_size() ||
        lease.shard_incarnations_size() != spec.num_shards() ||
        int64_t{lease.blocks_size()} * spec.block_size() < lease.writable_from()) {
      Fail(where + "is malformed:\n" + lease.DebugString());
    }
    absl::flat_hash_set<int32_t> blocks;
    for (int32_t block : lease.blocks()) {
      if (block < 0 || block >= spec.num_blocks() || !blocks.insert(block).second) {
        Fail(absl::StrCat(where, "names block ", block, " out of range or twice"));
      }
    }
  }

  FuzzedDataProvider& in_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  const std::shared_ptr<test::FakeShardControl> shard_control_ =
      std::make_shared<test::FakeShardControl>();
  Coordinator coordinator_;
  std::string lease_key_;
  std::vector<uint64_t> shards_;
  std::vector<KnownSession> sessions_;
  absl::flat_hash_map<std::string, v1::ModelSpec> specs_;  // the models GetStats reported last
};

}  // namespace
}  // namespace kvtier

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kvtier::SetLogSink([](absl::string_view) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  kvtier::CoordinatorFuzzer(in).Run();
  return 0;
}
