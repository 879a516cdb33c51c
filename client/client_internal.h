// TierConnection: the client library's plumbing, shared by Client, Session and Step. NOT part
// of the API: front-ends include client.h, session.h and step.h only, and nothing outside
// client/ includes this header.
//
// It holds the channel to the coordinator, with one function per SessionService and
// AdminService rpc it uses (each under the control deadline, its status converted in one place), one data-plane stub per shard,
// its channel shared by every step, and the idle sets of long-lived Step streams that it lends
// to steps (shard_streams.h): a set for each step running at once, kept for the next.
//
// Thread-safe: mu_ guards the shard stubs and the idle stream sets; the coordinator stub is
// thread-safe itself.
#ifndef KVTIER_CLIENT_CLIENT_INTERNAL_H_
#define KVTIER_CLIENT_CLIENT_INTERNAL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "client/shard_streams.h"
#include "grpcpp/client_context.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/session.grpc.pb.h"

namespace kvtier {

class TierConnection {
 public:
  explicit TierConnection(const ClientOptions& options);

  const ClientOptions& options() const { return options_; }

  // The coordinator's rpcs (session.proto, admin.proto).
  absl::StatusOr<v1::RegisterModelResponse> RegisterModel(const v1::RegisterModelRequest& request);
  absl::StatusOr<v1::OpenSessionResponse> OpenSession(const v1::OpenSessionRequest& request);
  absl::StatusOr<v1::GetSessionResponse> GetSession(const v1::GetSessionRequest& request);
  absl::StatusOr<v1::TakeOverSessionResponse> TakeOverSession(
      const v1::TakeOverSessionRequest& request);
  absl::StatusOr<v1::RenewLeaseResponse> RenewLease(const v1::RenewLeaseRequest& request);
  absl::StatusOr<v1::ExtendResponse> Extend(const v1::ExtendRequest& request);
  absl::StatusOr<v1::EndTurnResponse> EndTurn(const v1::EndTurnRequest& request);
  absl::StatusOr<v1::CloseSessionResponse> CloseSession(const v1::CloseSessionRequest& request);
  absl::StatusOr<v1::ForkSessionResponse> ForkSession(const v1::ForkSessionRequest& request);
  absl::StatusOr<v1::InvalidateSessionResponse> InvalidateSession(
      const v1::InvalidateSessionRequest& request);
  absl::StatusOr<v1::InvalidatePrefixResponse> InvalidatePrefix(
      const v1::InvalidatePrefixRequest& request);
  absl::StatusOr<v1::GetStatsResponse> GetStats(const v1::GetStatsRequest& request);

  // The data-plane stub for a shard, its channel shared by every step.
  std::shared_ptr<v1::AttentionService::Stub> Shard(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the shard's channel after it failed to connect, so the next step dials afresh
  // (a restarted shard) instead of waiting out the old channel's reconnect backoff.
  void ForgetShard(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);

  // A set of data-plane streams for one step: an idle one, or a new one.
  std::unique_ptr<ShardStreams> TakeStreams() ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a step's streams back for the next step.
  void ReturnStreams(std::unique_ptr<ShardStreams> streams) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  TierConnection(const ClientOptions& options, std::shared_ptr<grpc::Channel> coordinator);

  template <typename Stub, typename Request, typename Response>
  using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

  // Calls `rpc` of `stub` under the control deadline; a failure keeps its code, prefixed with
  // `name`.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(Stub& stub, Rpc<Stub, Request, Response> rpc,
                                absl::string_view name, const Request& request);

  const ClientOptions options_;
  const std::unique_ptr<v1::SessionService::Stub> coordinator_;
  const std::unique_ptr<v1::AdminService::Stub> admin_;  // on the coordinator's channel
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<v1::AttentionService::Stub>> shards_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<ShardStreams>> idle_streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CLIENT_INTERNAL_H_
