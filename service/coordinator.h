// Coordinator: the tier's only writer of metadata. It registers models, tracks shard
// membership and assigns head ranges, opens, extends and retires sessions, allocates blocks,
// and grants each session a signed lease over its blocks that shards check on every step.
//
// It is never on the per-layer path: a front-end calls it when a session opens or resumes,
// when new tokens need a block, and when a turn ends.
//
// A shard that leaves (DeregisterShard), stops heartbeating for `heartbeat_timeout`, or
// registers again from the same address (it restarted) vacates its slots; every session of
// the affected models whose K/V lived there is dropped, and its calls answer
// FAILED_PRECONDITION with reason REPREFILL_REQUIRED. A vacant slot goes to the next shard with
// room.
//
// Membership is logged (proto/wire/log.h): shards joining and removed (and why), head ranges
// assigned and vacated, sessions dropped, models ready, and a shard with no room for any
// vacant range it could take, with the numbers (also sent in its assignment).
//
// One client at a time writes a session: the holder of its writer id, issued by OpenSession and
// by TakeOverSession, which also gives the session's blocks new generations so shards refuse
// the previous writer's leases. A refused call changes nothing.
//
// Forks, invalidations and version retirement (coordinator_fork.cc, coordinator_invalidate.cc)
// also talk to the shards (ShardControl): their metadata change is made at once under the
// lock, then every shard of the model is told (copy a fork's tail block; refuse revoked
// sessions and blocks) and the call answers, through its callback, once all have
// acknowledged. A shard that does not, in time, is dropped as lost.
//
// Thread-safe: one mutex guards all state; every method holds it briefly and never blocks on
// I/O under it (log lines are written under it: one short write each). Callbacks run without
// it, on the calling thread or a gRPC thread; the destructor waits for those in flight.
#ifndef KVTIER_SERVICE_COORDINATOR_H_
#define KVTIER_SERVICE_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache/blocks/eviction_policy.h"
#include "kvtier/v1/admin.pb.h"
#include "kvtier/v1/registry.pb.h"
#include "kvtier/v1/session.pb.h"
#include "proto/wire/security_config.h"
#include "service/invalidation.h"
#include "service/membership.h"
#include "service/model_table.h"
#include "service/session_table.h"
#include "service/shard_control.h"

namespace kvtier {

struct CoordinatorOptions {
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // A shard silent this long is dropped with its sessions.
  absl::Duration heartbeat_timeout = absl::Seconds(5);
  // A session untouched this long (no Open, Extend, TakeOverSession, RenewLease) is closed;
  // leases last as long.
  absl::Duration session_idle_timeout = absl::Minutes(10);
  // EndTurn's retention when the request asks for 0, and the most it may ask for. A retained
  // session is soft-pinned until then, and ends after: its full blocks stay cached.
  absl::Duration default_retention = absl::Minutes(10);
  absl::Duration max_retention = absl::Hours(24);
  // Under memory pressure, evict retained sessions (oldest deadline first) once no cached
  // block is left to evict; false: never, answer RESOURCE_EXHAUSTED instead.
  bool evict_retained_sessions = true;
  // The order cached blocks are evicted in: "slru", "lru" or "lfu-aging"
  // (cache/blocks/eviction_policy.h).
  std::string eviction_policy = std::string(kDefaultEvictionPolicy);
  // The most a model version's block metadata may take (BlockManager::MetadataBytes: per
  // block, block_size token ids and under 100 bytes more, all allocated when it registers): a
  // larger one is refused with RESOURCE_EXHAUSTED before anything is allocated under the lock.
  int64_t max_model_metadata_bytes = int64_t{1} << 30;
  // A tenant whose full blocks every tenant of the same model may match (shared system
  // prompts); empty: none. NOTE: a shared prefix leaks prompts through timing, so nothing is
  // public unless a deployment says so.
  std::string public_tenant;
  // Tenant quotas: the most blocks of each model version a tenant's sessions may own
  // (BlockQuota). A tenant at its cap has its own cached blocks evicted first, then its own
  // retained sessions (oldest deadline first, if evict_retained_sessions), then gets
  // RESOURCE_EXHAUSTED; other tenants' blocks and sessions are untouched. Tenants not listed get
  // default_tenant_quota; 0: no cap.
  absl::flat_hash_map<std::string, int32_t> tenant_quotas;
  int32_t default_tenant_quota = 0;
  // How the coordinator calls shards; null: over gRPC (GrpcShardControl), each call under
  // `shard_control_deadline`, past which the shard is dropped as lost.
  std::shared_ptr<ShardControl> shard_control;
  absl::Duration shard_control_deadline = absl::Seconds(5);
  // How GrpcShardControl's channels to shards are secured (TLS, the coordinator's token).
  ChannelSecurity shard_channels;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// How an asynchronous call answers: once, with its result.
template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;

class Coordinator {
 public:
  explicit Coordinator(const CoordinatorOptions& options);
  // Waits for the callbacks of calls in flight.
  ~Coordinator();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Session service (session.proto says what each does).
  absl::StatusOr<v1::OpenSessionResponse> OpenSession(const v1::OpenSessionRequest& request);
  absl::StatusOr<v1::GetSessionResponse> GetSession(const v1::GetSessionRequest& request);
  absl::StatusOr<v1::TakeOverSessionResponse> TakeOverSession(
      const v1::TakeOverSessionRequest& request);
  absl::StatusOr<v1::RenewLeaseResponse> RenewLease(const v1::RenewLeaseRequest& request);
  absl::StatusOr<v1::ExtendResponse> Extend(const v1::ExtendRequest& request);
  void EndTurn(const v1::EndTurnRequest& request, Callback<v1::EndTurnResponse> done);
  absl::Status CloseSession(const v1::CloseSessionRequest& request);
  void ForkSession(const v1::ForkSessionRequest& request, Callback<v1::ForkSessionResponse> done);
  void InvalidateSession(const v1::InvalidateSessionRequest& request,
                         Callback<v1::InvalidationResult> done);
  void InvalidatePrefix(const v1::InvalidatePrefixRequest& request,
                        Callback<v1::InvalidationResult> done);

  // Admin service (admin.proto). RegisterModel(spec) registers one version and retires none.
  absl::StatusOr<v1::ModelSpec> RegisterModel(const v1::ModelSpec& model);
  void RegisterModel(const v1::RegisterModelRequest& request,
                     Callback<v1::RegisterModelResponse> done);
  void RetireModel(const v1::RetireModelRequest& request, Callback<v1::RetireModelResponse> done);
  void InvalidateTenant(const v1::InvalidateTenantRequest& request,
                        Callback<v1::InvalidationResult> done);
  void InvalidateModel(const v1::InvalidateModelRequest& request,
                       Callback<v1::InvalidationResult> done);
  v1::GetStatsResponse GetStats();

  // Shard registry (registry.proto).
  absl::StatusOr<v1::ShardAssignment> RegisterShard(const v1::RegisterShardRequest& request);
  absl::StatusOr<v1::ShardAssignment> Heartbeat(const v1::HeartbeatRequest& request);
  absl::Status DeregisterShard(const v1::DeregisterShardRequest& request);

  // Drops shards silent past the heartbeat timeout and sessions past their deadline. Called
  // periodically by the server.
  void Sweep();

  // Whether some model version can open sessions (every head range served, not draining).
  bool AnyModelReady() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<SessionRecord*> FindSession(const std::string& id, const std::string& tenant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // As FindSession, and ABORTED (WRITER_SUPERSEDED) unless `writer` is its current writer.
  absl::StatusOr<SessionRecord*> FindWritable(const std::string& id, const std::string& tenant,
                                              uint64_t writer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cap on the blocks of the session's tenant in its model (CoordinatorOptions).
  BlockQuota QuotaOf(const SessionRecord& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // BlockManager::CheckQuota for `session`'s tenant, the message naming tenant and model.
  absl::Status CheckQuota(const SessionRecord& session, absl::Span<const BlockId> matched,
                          int32_t fresh, int32_t releasing, int32_t uncovering) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where the session may match cached blocks: its own namespace, then the public one.
  std::vector<NamespaceId> MatchNamespaces(const SessionRecord& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The retained sessions whose eviction makes room for `fresh` blocks beside `matched` for
  // `session` (which gives back `releasing` blocks it reserved first), none when there is
  // room: first the tenant's own (oldest deadline first) while it would be over its quota,
  // then any of the model's while the pool is short. RESOURCE_EXHAUSTED when even evicting all
  // of them (or none, if configured so) leaves the tenant over its quota or the pool short.
  absl::StatusOr<std::vector<SessionRecord*>> RetainedToEvict(const SessionRecord& session,
                                                              absl::Span<const BlockId> matched,
                                                              int32_t fresh, int32_t releasing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `tokens`, written by the session's writer, to its history, and caches the blocks
  // they fill while the session's history stays a chain of cached blocks.
  void CommitTokens(SessionRecord& session, absl::Span<const int32_t> tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `by` to one counter of the model and of `tenant`.
  static void Bump(ModelState& model, const std::string& tenant,
                   int64_t (v1::CacheCounters::*get)() const,
                   void (v1::CacheCounters::*set)(int64_t), int64_t by);
  v1::BlockLease GrantLease(const SessionRecord& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WriterGrant GrantWriter(const SessionRecord& session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::SessionInfo DescribeSession(const SessionRecord& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Extend's and EndTurn's common check, changing nothing: finds the session for its writer,
  // which must agree on the context length; `tokens` (written by the caller) must be valid
  // ids that fit the session's blocks. Returns the session to commit them to.
  absl::StatusOr<SessionRecord*> CheckCommit(const std::string& session_id,
                                             const std::string& tenant, uint64_t writer,
                                             int32_t expected_context_len,
                                             const google::protobuf::RepeatedField<int32_t>& tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An invalidation planned and applied under the lock: what it dropped so far, and what the
  // shards must be told before it answers.
  struct Revocation {
    v1::InvalidationResult result;
    std::vector<ShardCall> calls;
  };
  Invalidation NewInvalidation(std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies `invalidation`, counting it in a TierCounters field (`get` and `set`; none when
  // null), and turns it into calls to every slot's shard.
  Revocation Finish(Invalidation& invalidation, int64_t (v1::TierCounters::*get)() const,
                    void (v1::TierCounters::*set)(int64_t)) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the revocation's calls; drops the shards that do not acknowledge; answers `done`.
  void Send(absl::StatusOr<Revocation> revocation, Callback<v1::InvalidationResult> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `request`, addressed to the incarnation of each of the model's slots that has a shard.
  std::vector<ShardCall> ToEverySlot(const ModelState& model,
                                     std::variant<v1::RevokeRequest, v1::CopyBlocksRequest> request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the members whose call failed (still members): dropped as lost, saying `what`
  // they did not do. Returns how many.
  int32_t DropFailed(const std::vector<ShardCall>& calls, const std::vector<absl::Status>& statuses,
                     absl::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Retires `model` in `mode` into `invalidation` (IMMEDIATE: removed once the caller has
  // turned it into calls, see RemoveModel; DRAIN: marked draining). Returns the sessions left
  // to drain; FAILED_PRECONDITION for a model that is draining already.
  absl::StatusOr<int64_t> Retire(ModelState* model, v1::RetireMode mode, Invalidation& invalidation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Vacates the model's slots and forgets it; its tombstones stay, detached.
  void RemoveModel(ModelState* model, absl::string_view why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the draining models with no live session left.
  void RetireDrained() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tombstones the retained sessions `victims`, evicted for room in `model`.
  void EvictRetained(ModelState& model, const std::vector<SessionRecord*>& victims)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FAILED_PRECONDITION when `model` is draining: no new sessions (or forks) on it.
  static absl::Status CheckNotDraining(const ModelState& model);

  // Gives vacant slots to live shards with room, each a fresh incarnation.
  void FillVacancies() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Vacates the member's slots, drops the sessions that lived there, forgets the member.
  void RemoveShard(uint64_t id, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::ShardAssignment AssignmentFor(const ShardMember& member) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  const std::string lease_key_;
  const std::shared_ptr<ShardControl> shard_control_;

  absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // calls waiting for shards
  v1::TierCounters tier_ ABSL_GUARDED_BY(mu_);
  ModelTable models_ ABSL_GUARDED_BY(mu_);
  Membership shards_ ABSL_GUARDED_BY(mu_);
  SessionTable sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_incarnation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_COORDINATOR_H_
