// The tier with authentication on, tried as outside clients would: every method of every
// authenticated service against every kind of caller (none, an unknown token, each role), then
// the boundaries a role must not cross (tenants, the lease key, shards, operators' calls), and
// forged leases against every shard.
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "client/session.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/registry.grpc.pb.h"
#include "kvtier/v1/session.grpc.pb.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "kvtier/v1/transfer.grpc.pb.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/transport_security.h"
#include "service/head_placement.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr int kKvHeads = 2;
constexpr int kQHeads = 4;
constexpr int kShards = 2;

// The front-ends' and operators' credentials; the tier mints its shards' and coordinator's.
constexpr char kAcmeToken[] = "acme-token-3c1f";
constexpr char kGlobexToken[] = "globex-token-77aa";
constexpr char kGatewayToken[] = "gateway-token-09be";
constexpr char kAdminToken[] = "admin-token-5d2e";
constexpr char kShardToken[] = "shard-token-a41c";
constexpr char kCoordinatorToken[] = "coordinator-token-e8f0";

std::shared_ptr<const Principals> TestPrincipals() {
  absl::StatusOr<Principals> principals = Principals::Parse(
      absl::StrCat("token:", kAcmeToken, " frontend acme\n",                         //
                   "sha256:", TokenHashHex(kGlobexToken), " frontend globex\n",      //
                   "token:", kGatewayToken, " frontend acme,globex  # a gateway\n",  //
                   "token:", kAdminToken, " admin\n",                                //
                   "token:", kShardToken, " shard\n",                                //
                   "token:", kCoordinatorToken, " coordinator\n"));
  EXPECT_TRUE(principals.ok()) << principals.status();
  return std::make_shared<const Principals>(*std::move(principals));
}

// What a call's status says about the authorizer: it refused (which way), or let it through
// (the call then failed or not on its own merits).
enum class Verdict { kUnauthenticated, kPermissionDenied, kPassed };

Verdict VerdictOf(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      return Verdict::kUnauthenticated;
    case grpc::StatusCode::PERMISSION_DENIED:
      return Verdict::kPermissionDenied;
    default:
      return Verdict::kPassed;
  }
}

// Calls `method` ("/kvtier.v1.SessionService/OpenSession") with an empty request over
// `channel`, whatever its kind (unary or server streaming), and returns its status.
grpc::Status CallEmpty(grpc::Channel& channel, const std::string& method) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&context, method, &queue);
  auto wait = [&queue](auto start) {
    void* tag = nullptr;
    bool ok = false;
    start(reinterpret_cast<void*>(1));
    return queue.Next(&tag, &ok) && ok;
  };
  grpc::Slice empty("");
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  wait([&](void* tag) { call->StartCall(tag); });
  wait([&](void* tag) { call->Write(request, tag); });
  wait([&](void* tag) { call->WritesDone(tag); });
  while (wait([&](void* tag) { call->Read(&response, tag); })) {
  }
  wait([&](void* tag) { call->Finish(&status, tag); });
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
  return status;
}

class TierSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalTierOptions options =
        FastTier(TestModel("m", kKvHeads, kQHeads, kShards, DType::kBF16, 64));
    options.security.principals = TestPrincipals();
    absl::StatusOr<std::unique_ptr<LocalTier>> local = LocalTier::Start(options);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = *std::move(local);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& address, const std::string& token) {
    return OpenChannel(address, ChannelSecurity{.tls = {}, .token = token});
  }

  std::unique_ptr<Client> ClientWith(const std::string& token) {
    ClientOptions options;
    options.coordinator_address = local_->coordinator_address();
    options.step_deadline = absl::Seconds(20);
    options.security.token = token;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::unique_ptr<LocalTier> local_;
};

struct Caller {
  std::string name;
  std::string token;  // empty: no credential
  // The services this caller's role opens (full names).
  std::vector<std::string> allowed;
};

TEST_F(TierSecurityTest, EveryMethodOfEveryPlaneChecksTheCallersRole) {
  const std::string session = v1::SessionService::service_full_name();
  const std::string admin = v1::AdminService::service_full_name();
  const std::string registry = v1::ShardRegistryService::service_full_name();
  const std::string control = v1::ShardControlService::service_full_name();
  const std::string transfer = v1::BlockTransferService::service_full_name();
  const std::vector<Caller> callers = {
      {"no credential", "", {}},
      {"an unknown token", "not-a-token-anyone-issued", {}},
      {"frontend acme", kAcmeToken, {session}},
      {"admin", kAdminToken, {admin}},
      {"shard", kShardToken, {registry, transfer}},
      {"coordinator", kCoordinatorToken, {control, transfer}},
  };
  // Where each service is served.
  const std::vector<std::pair<std::string, std::string>> services = {
      {session, local_->coordinator_address()},  {admin, local_->coordinator_address()},
      {registry, local_->coordinator_address()}, {control, local_->shard_address(0)},
      {transfer, local_->shard_address(1)},
  };
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  int calls = 0;
  for (const Caller& caller : callers) {
    for (const auto& [service, address] : services) {
      std::shared_ptr<grpc::Channel> channel = Channel(address, caller.token);
      const google::protobuf::ServiceDescriptor* descriptor = pool->FindServiceByName(service);
      ASSERT_NE(descriptor, nullptr) << service;
      for (int m = 0; m < descriptor->method_count(); ++m) {
        const std::string method = descriptor->method(m)->name();
        SCOPED_TRACE(absl::StrCat(caller.name, " calling ", service, "/", method));
        const grpc::Status status = CallEmpty(*channel, absl::StrCat("/", service, "/", method));
        ++calls;
        // A pull is the coordinator's to start; a shard only answers the pulling shard's calls.
        const bool allowed =
            std::find(caller.allowed.begin(), caller.allowed.end(), service) !=
                caller.allowed.end() &&
            !(service == transfer && method == "PullBlocks" && caller.name == "shard");
        const Verdict expected = caller.token.empty() || caller.name == "an unknown token"
                                     ? Verdict::kUnauthenticated
                                 : allowed ? Verdict::kPassed
                                           : Verdict::kPermissionDenied;
        // An allowed front-end still names no tenant of its own in an empty request.
        const Verdict adjusted = expected == Verdict::kPassed && service == session
                                     ? Verdict::kPermissionDenied
                                     : expected;
        EXPECT_EQ(VerdictOf(status), adjusted) << status.error_message();
        if (adjusted != Verdict::kPassed) {
          EXPECT_THAT(status.error_message(), HasSubstr(method));
        }
        if (adjusted == Verdict::kUnauthenticated || expected == Verdict::kPermissionDenied) {
          EXPECT_THAT(status.error_message(), HasSubstr("credential"));
        }
      }
    }
  }
  EXPECT_GT(calls, 50);
}

TEST_F(TierSecurityTest, RefusalsSayWhichRoleTheCallNeeds) {
  // A front-end cannot register a shard (and so never sees the lease key) or deregister one.
  auto registry =
      v1::ShardRegistryService::NewStub(Channel(local_->coordinator_address(), kAcmeToken));
  grpc::ClientContext register_context;
  v1::RegisterShardRequest join;
  join.set_address("127.0.0.1:1");
  join.set_capacity_bytes(1 << 30);
  v1::RegisterShardResponse joined;
  grpc::Status status = registry->RegisterShard(&register_context, join, &joined);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("needs a shard credential"));
  EXPECT_TRUE(joined.assignment().lease_key().empty());

  grpc::ClientContext heartbeat_context;
  v1::HeartbeatResponse beat;
  status = registry->Heartbeat(&heartbeat_context, v1::HeartbeatRequest(), &beat);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(beat.assignment().lease_key().empty());

  // Nothing it tried touched the tier: both shards still serve, and a session opens.
  std::unique_ptr<Client> acme = ClientWith(kAcmeToken);
  absl::StatusOr<std::unique_ptr<Session>> opened = acme->OpenSession(TestModelId("m"), "acme");
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_TRUE((*opened)->Extend({1, 2}).ok());

  // A front-end cannot register models or invalidate another tenant; a shard cannot open
  // sessions.
  absl::StatusOr<v1::ModelSpec> model = acme->RegisterModel(TestModel("m2", 2, 4, 1));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kPermissionDenied) << model.status();
  EXPECT_THAT(model.status().message(), HasSubstr("needs an admin credential"));
  auto admin_stub = v1::AdminService::NewStub(Channel(local_->coordinator_address(), kAcmeToken));
  grpc::ClientContext invalidate_context;
  v1::InvalidateTenantRequest invalidate;
  invalidate.set_tenant("globex");
  v1::InvalidateTenantResponse invalidated;
  status = admin_stub->InvalidateTenant(&invalidate_context, invalidate, &invalidated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  std::unique_ptr<Client> shard = ClientWith(kShardToken);
  absl::StatusOr<std::unique_ptr<Session>> by_shard = shard->OpenSession(TestModelId("m"), "acme");
  EXPECT_EQ(by_shard.status().code(), absl::StatusCode::kPermissionDenied) << by_shard.status();
  EXPECT_THAT(by_shard.status().message(), HasSubstr("needs a frontend credential"));
}

TEST_F(TierSecurityTest, TheTenantComesFromTheCredential) {
  std::unique_ptr<Client> acme = ClientWith(kAcmeToken);
  std::unique_ptr<Client> globex = ClientWith(kGlobexToken);
  std::unique_ptr<Client> gateway = ClientWith(kGatewayToken);

  // A front-end cannot act for a tenant its credential does not name...
  absl::StatusOr<std::unique_ptr<Session>> posing = acme->OpenSession(TestModelId("m"), "globex");
  EXPECT_EQ(posing.status().code(), absl::StatusCode::kPermissionDenied) << posing.status();
  EXPECT_THAT(posing.status().message(), HasSubstr("tenant \"globex\""));

  // ...so another tenant's session is out of its reach by id, under either tenant name.
  absl::StatusOr<std::unique_ptr<Session>> mine = acme->OpenSession(TestModelId("m"), "acme");
  ASSERT_TRUE(mine.ok()) << mine.status();
  const std::string id = (*mine)->id();
  absl::StatusOr<std::unique_ptr<Session>> as_acme = globex->ResumeSession(id, "acme");
  EXPECT_EQ(as_acme.status().code(), absl::StatusCode::kPermissionDenied) << as_acme.status();
  absl::StatusOr<std::unique_ptr<Session>> as_globex = globex->ResumeSession(id, "globex");
  EXPECT_EQ(as_globex.status().code(), absl::StatusCode::kNotFound) << as_globex.status();
  absl::StatusOr<v1::InvalidationResult> dropped = globex->InvalidateSession(id, "acme");
  EXPECT_EQ(dropped.status().code(), absl::StatusCode::kPermissionDenied) << dropped.status();
  absl::StatusOr<std::unique_ptr<Session>> fork = globex->ForkSession(id, "acme");
  EXPECT_EQ(fork.status().code(), absl::StatusCode::kPermissionDenied) << fork.status();

  // A gateway acts for each tenant it names, and for no other.
  EXPECT_TRUE(gateway->OpenSession(TestModelId("m"), "acme").ok());
  EXPECT_TRUE(gateway->OpenSession(TestModelId("m"), "globex").ok());
  EXPECT_EQ(gateway->OpenSession(TestModelId("m"), "initech").status().code(),
            absl::StatusCode::kPermissionDenied);

  // The session that all of this was aimed at is untouched.
  EXPECT_TRUE((*mine)->Extend({1, 2, 3}).ok());
}

TEST_F(TierSecurityTest, AuthenticatedTierComputesAttentionAndInvalidates) {
  // Every internal call (shard registration and heartbeats, the coordinator's revocations)
  // carries the tier's own credentials; with them the tier works as without authentication.
  std::unique_ptr<Client> acme = ClientWith(kAcmeToken);
  std::mt19937_64 rng(FreshSeed());
  absl::StatusOr<std::unique_ptr<Session>> opened = acme->OpenSession(TestModelId("m"), "acme");
  ASSERT_TRUE(opened.ok()) << opened.status();
  CheckedSession session = Checked(*std::move(opened));
  ASSERT_TRUE(CheckedStep(*acme, {&session}, {7}, rng).ok());
  ASSERT_TRUE(CheckedStep(*acme, {&session}, {1}, rng).ok());

  absl::StatusOr<v1::InvalidationResult> result =
      acme->InvalidateSession(session.session->id(), "acme");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->shards_acknowledged(), kShards);
  EXPECT_EQ(result->shards_dropped(), 0);

  std::unique_ptr<Client> admin = ClientWith(kAdminToken);
  absl::StatusOr<v1::GetStatsResponse> stats = admin->GetStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->models_size(), 1);
}

TEST_F(TierSecurityTest, EveryShardRefusesForgedLeases) {
  // A real lease for two tokens, from the coordinator itself.
  v1::OpenSessionRequest open;
  *open.mutable_model() = TestModelId("m");
  open.set_tenant("acme");
  absl::StatusOr<v1::OpenSessionResponse> opened = local_->coordinator().OpenSession(open);
  ASSERT_TRUE(opened.ok()) << opened.status();
  v1::ExtendRequest extend;
  extend.set_session_id(opened->session().session_id());
  extend.set_tenant("acme");
  extend.set_writer(opened->grant().writer());
  extend.set_reserve_tokens(2);
  absl::StatusOr<v1::ExtendResponse> extended = local_->coordinator().Extend(extend);
  ASSERT_TRUE(extended.ok()) << extended.status();
  const v1::BlockLease lease = extended->lease();
  const v1::ModelSpec model = TestModel("m", kKvHeads, kQHeads, kShards);

  std::vector<std::pair<std::string, v1::BlockLease>> forgeries;
  v1::BlockLease wrong_key = lease;
  SignLease(NewLeaseKey(), &wrong_key);
  forgeries.push_back({"signed with another key", wrong_key});
  for (int byte = 0; byte < static_cast<int>(lease.signature().size()); byte += 7) {
    v1::BlockLease flipped = lease;
    (*flipped.mutable_signature())[byte] ^= 0x01;
    forgeries.push_back({absl::StrCat("signature byte ", byte, " changed"), flipped});
  }
  v1::BlockLease other_block = lease;
  other_block.set_blocks(0, lease.blocks(0) + 1);
  forgeries.push_back({"another block, same signature", other_block});
  v1::BlockLease longer = lease;
  longer.mutable_expires_at()->set_seconds(lease.expires_at().seconds() + 3600);
  forgeries.push_back({"a later expiry, same signature", longer});

  for (int slot = 0; slot < kShards; ++slot) {
    auto stub = v1::AttentionService::NewStub(Channel(local_->shard_address(slot), ""));
    for (const auto& [what, forged] : forgeries) {
      SCOPED_TRACE(absl::StrCat("shard ", slot, ": ", what));
      v1::StepRequest request;
      *request.mutable_plan()->mutable_model() = model.id();
      request.mutable_plan()->set_slot(slot);
      v1::SequenceStep* sequence = request.mutable_plan()->add_sequences();
      *sequence->mutable_lease() = forged;
      sequence->set_context_len(2);
      sequence->set_num_new_tokens(2);
      *request.mutable_plan()->mutable_shapes() =
          LayerShapesFor(model, HeadRangeForSlot(model, slot), 2);
      const int bytes = 2 * (kQHeads / kShards) * 32 * 2;
      request.mutable_layer()->mutable_q()->assign(bytes, '\0');
      request.mutable_layer()->mutable_k()->assign(bytes / (kQHeads / kKvHeads), '\0');
      request.mutable_layer()->mutable_v()->assign(bytes / (kQHeads / kKvHeads), '\0');
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      auto stream = stub->Step(&context);
      stream->Write(request);
      stream->WritesDone();
      v1::StepResponse response;
      EXPECT_FALSE(stream->Read(&response));
      const grpc::Status status = stream->Finish();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("bad signature"));
    }
  }
}

}  // namespace
}  // namespace kvtier::test
