#include "client/client_internal.h"

#include "grpcpp/support/channel_arguments.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/transport_security.h"

namespace kvtier {
namespace {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  return OpenChannel(address, options.security, args);
}

}  // namespace

TierConnection::TierConnection(const ClientOptions& options,
                               std::shared_ptr<grpc::Channel> coordinator)
    : options_(options),
      coordinator_(v1::SessionService::NewStub(coordinator)),
      admin_(v1::AdminService::NewStub(coordinator)) {}

TierConnection::TierConnection(const ClientOptions& options)
    : TierConnection(options, NewChannel(options.coordinator_address, options)) {}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> TierConnection::Call(Stub& stub, Rpc<Stub, Request, Response> rpc,
                                              absl::string_view name, const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.control_deadline));
  Response response;
  if (grpc::Status status = (stub.*rpc)(&context, request, &response); !status.ok()) {
    return FromGrpcStatus(status, name);
  }
  return response;
}

absl::StatusOr<v1::RegisterModelResponse> TierConnection::RegisterModel(
    const v1::RegisterModelRequest& request) {
  return Call(*admin_, &v1::AdminService::Stub::RegisterModel, "RegisterModel", request);
}

absl::StatusOr<v1::OpenSessionResponse> TierConnection::OpenSession(
    const v1::OpenSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::OpenSession, "OpenSession", request);
}

absl::StatusOr<v1::GetSessionResponse> TierConnection::GetSession(
    const v1::GetSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::GetSession, "GetSession", request);
}

absl::StatusOr<v1::TakeOverSessionResponse> TierConnection::TakeOverSession(
    const v1::TakeOverSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::TakeOverSession, "TakeOverSession",
              request);
}

absl::StatusOr<v1::RenewLeaseResponse> TierConnection::RenewLease(
    const v1::RenewLeaseRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::RenewLease, "RenewLease", request);
}

absl::StatusOr<v1::ExtendResponse> TierConnection::Extend(const v1::ExtendRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::Extend, "Extend", request);
}

absl::StatusOr<v1::EndTurnResponse> TierConnection::EndTurn(const v1::EndTurnRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::EndTurn, "EndTurn", request);
}

absl::StatusOr<v1::CloseSessionResponse> TierConnection::CloseSession(
    const v1::CloseSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::CloseSession, "CloseSession", request);
}

absl::StatusOr<v1::ForkSessionResponse> TierConnection::ForkSession(
    const v1::ForkSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::ForkSession, "ForkSession", request);
}

absl::StatusOr<v1::InvalidateSessionResponse> TierConnection::InvalidateSession(
    const v1::InvalidateSessionRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::InvalidateSession, "InvalidateSession",
              request);
}

absl::StatusOr<v1::InvalidatePrefixResponse> TierConnection::InvalidatePrefix(
    const v1::InvalidatePrefixRequest& request) {
  return Call(*coordinator_, &v1::SessionService::Stub::InvalidatePrefix, "InvalidatePrefix",
              request);
}

absl::StatusOr<v1::GetStatsResponse> TierConnection::GetStats(const v1::GetStatsRequest& request) {
  return Call(*admin_, &v1::AdminService::Stub::GetStats, "GetStats", request);
}

std::shared_ptr<v1::AttentionService::Stub> TierConnection::Shard(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<v1::AttentionService::Stub>& stub = shards_[address];
  if (stub == nullptr) {
    stub = v1::AttentionService::NewStub(NewChannel(address, options_));
  }
  return stub;
}

void TierConnection::ForgetShard(const std::string& address) {
  absl::MutexLock lock(&mu_);
  shards_.erase(address);
}

std::unique_ptr<ShardStreams> TierConnection::TakeStreams() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_streams_.empty()) {
      std::unique_ptr<ShardStreams> streams = std::move(idle_streams_.back());
      idle_streams_.pop_back();
      return streams;
    }
  }
  return std::make_unique<ShardStreams>(this);
}

void TierConnection::ReturnStreams(std::unique_ptr<ShardStreams> streams) {
  absl::MutexLock lock(&mu_);
  idle_streams_.push_back(std::move(streams));
}

}  // namespace kvtier
