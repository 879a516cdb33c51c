// Client: what a front-end model server links to use a kvtier tier. It holds a channel to the
// coordinator and one per shard, opens and resumes sessions, and starts steps (one forward
// pass of a batch of sessions; step.h).
//
// Front-ends stay stateless: a Session object caches only what the coordinator can give back
// (TakeOverSession), so any replica may resume a session by id. Every call carries a deadline.
// Errors are absl::Status with the gRPC code and the reason (kvtier/v1/errors.proto) kept;
// IsReprefillRequired tells the one a front-end must act on: the session's K/V is gone, so
// open a new session and prefill the conversation again.
//
// Thread-safe: a Client may be shared; a Session or Step is used by one thread at a time.
#ifndef KVTIER_CLIENT_CLIENT_H_
#define KVTIER_CLIENT_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvtier/v1/admin.pb.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/session.pb.h"
#include "proto/wire/security_config.h"

namespace kvtier {

class Session;
class Step;
class TierConnection;

struct ClientOptions {
  std::string coordinator_address;                      // host:port
  absl::Duration control_deadline = absl::Seconds(10);  // each coordinator call
  absl::Duration step_deadline = absl::Seconds(60);     // a whole step, all its layers
  int max_message_bytes = 256 << 20;
  // TLS and the bearer token, on the coordinator's channel and every shard's (README:
  // Security); default: plaintext, no token.
  ChannelSecurity security = {};
};

// True for the statuses that mean "the session's K/V is gone; open a new session and
// re-prefill": reason REPREFILL_REQUIRED (lost with a shard) or INVALIDATED
// (kvtier/v1/errors.proto), from the coordinator or a shard.
bool IsReprefillRequired(const absl::Status& status);
// True for reason INVALIDATED only: the K/V was invalidated (by the tenant or an operator) or
// its model version retired.
bool IsInvalidated(const absl::Status& status);

class Client {
 public:
  // Connects lazily: a coordinator that is down shows up as UNAVAILABLE on the first call.
  // INVALID_ARGUMENT naming the field for an empty address or a deadline that is not > 0.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  // Sessions and steps must not outlive their client.
  ~Client();

  // Operator calls (AdminService, on the coordinator's address).
  absl::StatusOr<v1::ModelSpec> RegisterModel(const v1::ModelSpec& model);
  absl::StatusOr<v1::GetStatsResponse> GetStats();

  absl::StatusOr<std::unique_ptr<Session>> OpenSession(const v1::ModelId& model,
                                                       const std::string& tenant);
  // Continues a session opened by any client, from what the tier holds, taking it over: the
  // client that wrote it before can no longer (session.h).
  absl::StatusOr<std::unique_ptr<Session>> ResumeSession(const std::string& session_id,
                                                         const std::string& tenant);
  // A new session, written by this client, that continues from the committed history of any
  // session of `tenant` (which its writer keeps writing): see Session::Fork.
  absl::StatusOr<std::unique_ptr<Session>> ForkSession(const std::string& session_id,
                                                       const std::string& tenant);
  // A step over `sessions` (all of one model, each with tokens added by Extend): their new
  // tokens, session by session, are the rows of every layer's tensors.
  absl::StatusOr<std::unique_ptr<Step>> BeginStep(absl::Span<Session* const> sessions);

  // Invalidates one of `tenant`'s sessions, or every cached block and session over a token
  // prefix in `tenant`'s namespace of `model` (session.proto says exactly what goes). They
  // return once every shard refuses what was dropped.
  absl::StatusOr<v1::InvalidationResult> InvalidateSession(const std::string& session_id,
                                                           const std::string& tenant);
  absl::StatusOr<v1::InvalidationResult> InvalidatePrefix(const v1::ModelId& model,
                                                          const std::string& tenant,
                                                          absl::Span<const int32_t> tokens);

  const ClientOptions& options() const;

 private:
  friend class Session;
  friend class Step;

  explicit Client(const ClientOptions& options);
  absl::StatusOr<std::unique_ptr<Step>> OpenStep(absl::Span<Session* const> sessions);
  // A session from the coordinator's answer to OpenSession, TakeOverSession or ForkSession.
  template <typename Response>
  absl::StatusOr<std::unique_ptr<Session>> SessionFrom(absl::StatusOr<Response> response,
                                                       const std::string& tenant);
  TierConnection& connection() { return *connection_; }

  const std::unique_ptr<TierConnection> connection_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CLIENT_H_
