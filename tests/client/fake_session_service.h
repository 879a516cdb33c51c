// FakeSessionService: a kvtier.v1.SessionService, and the kvtier.v1.AdminService calls the
// client library makes (RegisterModel, GetStats), served on an ephemeral 127.0.0.1 port,
// standing in for the coordinator in client library tests.
//
// It behaves as a minimal coordinator of one model: sessions "session-1", "session-2", ...
// with writers 101, 102, ...; Extend and EndTurn check the writer and expected_context_len, then
// commit the tokens; every lease it grants covers exactly ceil((context_len + reserve_tokens) /
// block_size) blocks (next_tokens counted in, less the scripted cached ones), expires
// `lease_ttl` after it was granted and carries a signature unique
// to the grant ("lease-1", "lease-2", ...). Tests script it (FailNext, AdvanceSession,
// set_lease_ttl) and read back every call: its rpc, its request and the deadline it carried.
//
// Thread-safe: mu_ guards everything.
#ifndef KVTIER_TESTS_CLIENT_FAKE_SESSION_SERVICE_H_
#define KVTIER_TESTS_CLIENT_FAKE_SESSION_SERVICE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/session.grpc.pb.h"

namespace kvtier {

class FakeSessionService final : public v1::SessionService::Service {
 public:
  // Every call so far, in arrival order; requests by rpc.
  struct Calls {
    std::vector<std::string> rpcs;
    // Per call, the time it had left when it arrived (InfiniteDuration without a deadline).
    std::vector<absl::Duration> deadlines;
    std::vector<v1::RegisterModelRequest> register_model;
    std::vector<v1::OpenSessionRequest> open_session;
    std::vector<v1::GetSessionRequest> get_session;
    std::vector<v1::TakeOverSessionRequest> take_over_session;
    std::vector<v1::RenewLeaseRequest> renew_lease;
    std::vector<v1::ExtendRequest> extend;
    std::vector<v1::EndTurnRequest> end_turn;
    std::vector<v1::CloseSessionRequest> close_session;
  };

  // Sessions of `model`, served by `shards`.
  FakeSessionService(v1::ModelSpec model, std::vector<v1::ShardEndpoint> shards);
  ~FakeSessionService() override;

  const std::string& address() const { return address_; }

  // The next call of `rpc` (e.g. "GetSession") is recorded, then answered with `status`.
  void FailNext(const std::string& rpc, grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Another writer committed `tokens` more tokens to the session.
  void AdvanceSession(const std::string& session_id, int32_t tokens) ABSL_LOCKS_EXCLUDED(mu_);
  void set_lease_ttl(absl::Duration ttl) ABSL_LOCKS_EXCLUDED(mu_);
  // The next Extend with next_tokens finds this many of them cached (at most all but the last).
  void CacheNext(int32_t tokens) ABSL_LOCKS_EXCLUDED(mu_);

  Calls calls() const ABSL_LOCKS_EXCLUDED(mu_);
  // The tokens the session has committed, in order.
  std::vector<int32_t> committed(const std::string& session_id) const ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status OpenSession(grpc::ServerContext* context, const v1::OpenSessionRequest* request,
                           v1::OpenSessionResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                          v1::GetSessionResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status TakeOverSession(grpc::ServerContext* context,
                               const v1::TakeOverSessionRequest* request,
                               v1::TakeOverSessionResponse* response) override
      ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status RenewLease(grpc::ServerContext* context, const v1::RenewLeaseRequest* request,
                          v1::RenewLeaseResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status Extend(grpc::ServerContext* context, const v1::ExtendRequest* request,
                      v1::ExtendResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status EndTurn(grpc::ServerContext* context, const v1::EndTurnRequest* request,
                       v1::EndTurnResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status CloseSession(grpc::ServerContext* context, const v1::CloseSessionRequest* request,
                            v1::CloseSessionResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The AdminService half, answered by the fake's own RegisterModel and GetStats.
  class Admin final : public v1::AdminService::Service {
   public:
    explicit Admin(FakeSessionService* fake) : fake_(fake) {}
    grpc::Status RegisterModel(grpc::ServerContext* context,
                               const v1::RegisterModelRequest* request,
                               v1::RegisterModelResponse* response) override {
      return fake_->RegisterModel(*context, *request, response);
    }
    grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                          v1::GetStatsResponse* response) override {
      return fake_->GetStats(*context, response);
    }

   private:
    FakeSessionService* const fake_;
  };

  grpc::Status RegisterModel(const grpc::ServerContext& context,
                             const v1::RegisterModelRequest& request,
                             v1::RegisterModelResponse* response) ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status GetStats(const grpc::ServerContext& context, v1::GetStatsResponse* response)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct SessionState {
    std::string tenant;
    uint64_t writer = 0;
    std::vector<int32_t> tokens;  // committed
    int blocks = 0;
  };

  // Records a call; a scripted failure for `rpc` if there is one, else OK.
  grpc::Status Record(const std::string& rpc, const grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A session-scoped call arriving: records it (`request` in `log`), answers a scripted
  // failure if there is one, then finds the session the request names (*session).
  template <typename Request>
  grpc::Status ArriveAt(const std::string& rpc, const grpc::ServerContext& context,
                        const Request& request, std::vector<Request>& log, SessionState** session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    log.push_back(request);
    if (grpc::Status status = Record(rpc, context); !status.ok()) return status;
    return Find(request.session_id(), request.tenant(), session);
  }
  // The session for `tenant`, or NOT_FOUND.
  grpc::Status Find(const std::string& session_id, const std::string& tenant,
                    SessionState** session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks writer and expected length as the coordinator does, then commits `tokens`.
  grpc::Status Commit(SessionState& session, uint64_t writer, int32_t expected_context_len,
                      const google::protobuf::RepeatedField<int32_t>& tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A fresh lease over the session's first `session.blocks` blocks, and a grant with it.
  v1::BlockLease Lease(const std::string& session_id, const SessionState& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WriterGrant Grant(const std::string& session_id, const SessionState& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The session's info.
  v1::SessionInfo Describe(const std::string& session_id, const SessionState& session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const v1::ModelSpec model_;
  const std::vector<v1::ShardEndpoint> shards_;

  mutable absl::Mutex mu_;
  absl::Duration lease_ttl_ ABSL_GUARDED_BY(mu_) = absl::Hours(1);
  absl::flat_hash_map<std::string, std::deque<grpc::Status>> failures_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, SessionState> sessions_ ABSL_GUARDED_BY(mu_);
  int sessions_opened_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writers_granted_ ABSL_GUARDED_BY(mu_) = 100;
  int leases_granted_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t cache_next_ ABSL_GUARDED_BY(mu_) = 0;
  Calls calls_ ABSL_GUARDED_BY(mu_);

  Admin admin_{this};
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_CLIENT_FAKE_SESSION_SERVICE_H_
