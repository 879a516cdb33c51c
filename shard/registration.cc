#include "shard/registration.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/wire/log.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/time_convert.h"
#include "proto/wire/transport_security.h"

namespace kvtier {
namespace {

constexpr absl::Duration kDefaultHeartbeatInterval = absl::Seconds(1);

}  // namespace

ShardRegistration::ShardRegistration(const RegistrationOptions& options, ShardState* state)
    : options_(options),
      state_(state),
      stub_(v1::ShardRegistryService::NewStub(
          OpenChannel(options.coordinator_address, options.security))),
      thread_([this] { Run(); }) {}

ShardRegistration::~ShardRegistration() { Stop(); }

bool ShardRegistration::WaitUntilRegistered(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&registered_), timeout);
}

void ShardRegistration::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void ShardRegistration::Deregister() {
  v1::DeregisterShardRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (!registered_) return;
    registered_ = false;
    request.set_shard_id(shard_id_);
  }
  v1::DeregisterShardResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  const absl::Status status =
      FromGrpcStatus(stub_->DeregisterShard(&context, request, &response),
                     absl::StrCat("DeregisterShard to ", options_.coordinator_address));
  if (!status.ok()) Log(status.ToString());
}

void ShardRegistration::Run() {
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    bool registered;
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      registered = registered_;
      interval = heartbeat_interval_;
    }
    if (!registered) {
      if (absl::Status status = Register(); status.ok()) {
        backoff = options_.initial_backoff;
        // Report the new ranges ready now rather than a beat later.
        if (absl::Status beat = Heartbeat(); !beat.ok()) Log(beat.ToString());
      } else {
        Log(absl::StrCat(status.ToString(), "; retrying in ", absl::FormatDuration(backoff)));
        if (!SleepUnlessStopped(backoff)) return;
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      continue;
    }
    if (!SleepUnlessStopped(interval)) return;
    if (absl::Status status = Heartbeat(); !status.ok()) Log(status.ToString());
  }
}

absl::Status ShardRegistration::Register() {
  state_->Reset();
  options_.on_readiness(false);
  v1::RegisterShardRequest request;
  request.set_address(options_.advertised_address);
  request.set_capacity_bytes(options_.capacity_bytes);
  v1::RegisterShardResponse response;
  if (absl::Status status = Call("RegisterShard",
                                 [&](grpc::ClientContext* context) {
                                   return stub_->RegisterShard(context, request, &response);
                                 });
      !status.ok()) {
    return status;
  }
  const v1::ShardAssignment& assignment = response.assignment();
  Adopt(assignment);
  absl::MutexLock lock(&mu_);
  registered_ = true;
  shard_id_ = assignment.shard_id();
  Log(absl::StrCat("registered with coordinator ", options_.coordinator_address, " as shard ",
                   shard_id_, " at ", options_.advertised_address, ", assigned ",
                   assignment.ranges_size(), " head ranges"));
  return absl::OkStatus();
}

absl::Status ShardRegistration::Heartbeat() {
  v1::HeartbeatRequest request;
  {
    absl::MutexLock lock(&mu_);
    request.set_shard_id(shard_id_);
  }
  for (uint64_t incarnation : state_->ReadyIncarnations()) {
    request.add_ready_incarnations(incarnation);
  }
  v1::HeartbeatResponse response;
  absl::Status status = Call("Heartbeat", [&](grpc::ClientContext* context) {
    return stub_->Heartbeat(context, request, &response);
  });
  if (absl::IsNotFound(status)) {
    options_.on_readiness(false);
    absl::MutexLock lock(&mu_);
    registered_ = false;
    return absl::NotFoundError(
        absl::StrCat(status.message(), "; the K/V held here is void, registering again"));
  }
  if (status.ok()) Adopt(response.assignment());
  return status;
}

void ShardRegistration::Adopt(const v1::ShardAssignment& assignment) {
  const absl::Status hosted = state_->Apply(assignment);
  if (!hosted.ok()) Log(hosted.ToString());
  options_.on_readiness(hosted.ok() && assignment.ranges_size() > 0);
  if (assignment.no_room_reason() != no_room_reason_) {
    no_room_reason_ = assignment.no_room_reason();
    if (!no_room_reason_.empty()) {
      Log(absl::StrCat("no head range from coordinator ", options_.coordinator_address, ": ",
                       no_room_reason_));
    }
  }
  absl::MutexLock lock(&mu_);
  const absl::Duration interval = FromProtoDuration(assignment.heartbeat_interval());
  heartbeat_interval_ = interval > absl::ZeroDuration() ? interval : kDefaultHeartbeatInterval;
}

absl::Status ShardRegistration::Call(absl::string_view method,
                                     absl::FunctionRef<grpc::Status(grpc::ClientContext*)> call) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  {
    absl::MutexLock lock(&mu_);
    // NOTE: gRPC honours a cancel made before the call starts.
    if (stopping_) context.TryCancel();
    call_ = &context;
  }
  const grpc::Status status = call(&context);
  {
    absl::MutexLock lock(&mu_);
    call_ = nullptr;
  }
  return FromGrpcStatus(status, absl::StrCat(method, " to ", options_.coordinator_address));
}

std::chrono::system_clock::time_point ShardRegistration::Deadline() const {
  return absl::ToChronoTime(absl::Now() + options_.rpc_timeout);
}

bool ShardRegistration::SleepUnlessStopped(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  return !mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
}

}  // namespace kvtier
