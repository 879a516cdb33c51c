// The Coordinator's metadata logic, called directly with an injected clock: model
// registration, head-range assignment and readiness, sessions and their blocks, leases,
// retention, shard loss, and the lifecycle log.
#include "service/coordinator.h"

#include <cstdint>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "cache/blocks/block_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"
#include "tests/log_capture.h"
#include "tests/service/coordinator_harness.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::Contains;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : harness_(Options()), coordinator_(harness_.coordinator()) {}

  static CoordinatorOptions Options() {
    CoordinatorOptions options;
    options.heartbeat_timeout = absl::Seconds(5);
    options.session_idle_timeout = absl::Minutes(10);
    options.default_retention = absl::Minutes(1);
    return options;
  }

  uint64_t JoinShard(const std::string& address, int64_t capacity = int64_t{1} << 30) {
    return harness_.JoinShard(address, capacity);
  }
  v1::ShardAssignment Beat(uint64_t shard_id) { return harness_.Beat(shard_id); }

  absl::StatusOr<v1::OpenSessionResponse> Open(const std::string& tenant = "t") {
    v1::OpenSessionRequest request;
    request.mutable_model()->set_name("m");
    request.mutable_model()->set_version("test");
    request.set_tenant(tenant);
    return coordinator_.OpenSession(request);
  }

  absl::StatusOr<v1::ExtendResponse> Extend(const v1::OpenSessionResponse& session, int expected,
                                            std::vector<int32_t> tokens, int reserve,
                                            const std::string& tenant = "t") {
    v1::ExtendRequest request;
    request.set_session_id(session.session().session_id());
    request.set_tenant(tenant);
    request.set_expected_context_len(expected);
    request.mutable_tokens()->Add(tokens.begin(), tokens.end());
    request.set_reserve_tokens(reserve);
    request.set_writer(session.grant().writer());
    return coordinator_.Extend(request);
  }

  v1::ModelStats Stats() { return coordinator_.GetStats().models(0); }

  CoordinatorHarness harness_;
  Coordinator& coordinator_;
};

TEST_F(CoordinatorTest, RejectsBadModelsNamingTheField) {
  v1::ModelSpec model = TestModel("m", 3, 6, 2);
  model.set_num_q_heads(7);
  absl::Status status = coordinator_.RegisterModel(model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("model.num_q_heads"));
  model = TestModel("m", 3, 6, 4);  // more shards than KV heads
  EXPECT_THAT(coordinator_.RegisterModel(model).status().message(), HasSubstr("num_shards"));
  model = TestModel("bad name!", 3, 6, 2);
  EXPECT_THAT(coordinator_.RegisterModel(model).status().message(), HasSubstr("model.id.name"));

  ASSERT_TRUE(coordinator_.RegisterModel(TestModel("m", 3, 6, 2)).ok());
  EXPECT_TRUE(coordinator_.RegisterModel(TestModel("m", 3, 6, 2)).ok());  // idempotent
  EXPECT_EQ(coordinator_.RegisterModel(TestModel("m", 4, 8, 2)).status().code(),
            absl::StatusCode::kAlreadyExists);
}

// A spec whose block metadata alone would exhaust the coordinator's memory is refused before
// anything is allocated; one within the limit registers.
TEST_F(CoordinatorTest, RefusesAModelWhoseMetadataIsOverTheLimitAndChangesNothing) {
  const v1::GetStatsResponse before = coordinator_.GetStats();
  v1::ModelSpec huge = TestModel("m", 2, 4, 1, DType::kBF16, std::numeric_limits<int32_t>::max());
  huge.set_block_size(512);
  const absl::Status status = coordinator_.RegisterModel(huge).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("model.num_blocks: 2147483647 blocks x 512 tokens take about ",
                                     BlockManager::MetadataBytes(huge.num_blocks(), 512),
                                     " bytes of coordinator metadata, over its limit of 1073741824 "
                                     "(max_model_metadata_bytes)")));
  EXPECT_EQ(coordinator_.GetStats().DebugString(), before.DebugString());

  CoordinatorOptions options = Options();
  const v1::ModelSpec fits = TestModel("m", 2, 4, 1, DType::kBF16, 64);
  options.max_model_metadata_bytes = BlockManager::MetadataBytes(64, fits.block_size());
  CoordinatorHarness small(options);
  v1::ModelSpec over = fits;
  over.mutable_id()->set_version("over");
  over.set_num_blocks(65);
  EXPECT_EQ(small.coordinator().RegisterModel(over).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(small.coordinator().RegisterModel(fits).ok());
  EXPECT_EQ(small.coordinator().GetStats().models_size(), 1);
}

TEST_F(CoordinatorTest, AssignsUnevenHeadRangesAndOpensOnlyWhenEverySlotIsReady) {
  ASSERT_TRUE(coordinator_.RegisterModel(TestModel("m", 5, 10, 3)).ok());
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kUnavailable);
  JoinShard("a:1");
  JoinShard("b:1");
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kUnavailable);

  v1::RegisterShardRequest request;
  request.set_address("c:1");
  request.set_capacity_bytes(int64_t{1} << 30);
  absl::StatusOr<v1::ShardAssignment> third = coordinator_.RegisterShard(request);
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(third->ranges_size(), 1);
  // Assigned, but not ready until the shard says its pool is allocated.
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kUnavailable);
  Beat(third->shard_id());

  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_EQ(session->session().shards_size(), 3);
  // 5 heads over 3 shards: [0,2) [2,4) [4,5), contiguous and covering.
  const int want[][2] = {{0, 2}, {2, 4}, {4, 5}};
  std::set<std::string> addresses;
  for (int slot = 0; slot < 3; ++slot) {
    EXPECT_EQ(session->session().shards(slot).heads().kv_head_begin(), want[slot][0]);
    EXPECT_EQ(session->session().shards(slot).heads().kv_head_end(), want[slot][1]);
    addresses.insert(session->session().shards(slot).address());
  }
  EXPECT_EQ(addresses.size(), 3u);
}

TEST_F(CoordinatorTest, RefusesShardAddressesOthersCannotDialAndChangesNothing) {
  ASSERT_TRUE(coordinator_.RegisterModel(TestModel("m", 2, 4, 1)).ok());
  const v1::GetStatsResponse before = coordinator_.GetStats();
  auto do_register = [this](const std::string& address) {
    v1::RegisterShardRequest request;
    request.set_address(address);
    request.set_capacity_bytes(int64_t{1} << 30);
    return coordinator_.RegisterShard(request).status();
  };
  for (const std::string& address :
       {std::string(""), std::string("shard"), std::string("shard:"), std::string(":80"),
        std::string("shard:0"), std::string("shard:65536"), std::string("shard:-1"),
        std::string("shard:http"), std::string("0.0.0.0:80"), std::string("[::]:80"),
        std::string("::1:80"), std::string("[::1:80"), std::string("[]:80"),
        std::string("sh ard:80"), std::string(1 << 20, 'x') + ":80"}) {
    SCOPED_TRACE(address.substr(0, 64));
    const absl::Status status = do_register(address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr("address: expected host:port"));
    EXPECT_LT(status.message().size(), 1024u);
  }
  EXPECT_EQ(coordinator_.GetStats().DebugString(), before.DebugString());
  for (const std::string address : {"a:1", "10.0.0.1:65535", "[::1]:80", "[fe80::1]:5"}) {
    EXPECT_TRUE(do_register(address).ok()) << address;
  }
  EXPECT_EQ(coordinator_.GetStats().shards(), 4);
}

TEST_F(CoordinatorTest, ShardWithoutRoomGetsNoRange) {
  v1::ModelSpec model = TestModel("m", 2, 4, 1, DType::kBF16, 1024);
  ASSERT_TRUE(coordinator_.RegisterModel(model).ok());
  const int64_t pool = SlotPoolBytes(model, 0);
  JoinShard("small:1", pool - 1);
  EXPECT_EQ(Stats().live_shards(), 0);
  JoinShard("big:1", pool);
  EXPECT_EQ(Stats().live_shards(), 1);
  EXPECT_TRUE(Open().ok());
}

TEST_F(CoordinatorTest, AShardWithoutRoomIsToldWhyWithTheNumbersAndItIsLoggedOnce) {
  LogCapture log;
  v1::ModelSpec model = TestModel("m", 2, 4, 1, DType::kBF16, 1024);
  ASSERT_TRUE(coordinator_.RegisterModel(model).ok());
  const int64_t pool = SlotPoolBytes(model, 0);
  v1::RegisterShardRequest request;
  request.set_address("small:1");
  request.set_capacity_bytes(pool - 1);
  absl::StatusOr<v1::ShardAssignment> small = coordinator_.RegisterShard(request);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->ranges_size(), 0);
  const std::string why = absl::StrCat("capacity ", pool - 1, " bytes (", pool - 1,
                                       " free) fits no vacant head range (1 vacant): the smallest, "
                                       "model m@test slot 0 (KV heads [0, "
                                       "2)), needs ",
                                       pool, " bytes");
  EXPECT_EQ(small->no_room_reason(), why);
  EXPECT_EQ(Beat(small->shard_id()).no_room_reason(), why);
  EXPECT_THAT(log.lines(),
              Contains(EndsWith(absl::StrCat(": shard 1 at small:1: ", why, "\n"))).Times(1));

  JoinShard("big:1", pool);
  EXPECT_EQ(Beat(small->shard_id()).no_room_reason(), "");
}

TEST_F(CoordinatorTest, LogsShardsJoiningAndLeavingTheRangesTheyTakeAndTheSessionsLost) {
  LogCapture log;
  const v1::ModelSpec model = TestModel("m", 2, 4, 2, DType::kBF16, 8);
  ASSERT_TRUE(coordinator_.RegisterModel(model).ok());
  const uint64_t a = JoinShard("a:1");
  JoinShard("b:1");
  ASSERT_TRUE(Open().ok());
  v1::DeregisterShardRequest leave;
  leave.set_shard_id(a);
  ASSERT_TRUE(coordinator_.DeregisterShard(leave).ok());
  harness_.AdvanceClock(absl::Seconds(6));
  coordinator_.Sweep();
  JoinShard("c:1");
  JoinShard("c:1");

  const std::vector<std::string> lines = log.lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0],
              MatchesRegex(absl::StrCat(
                  kLogTimeRegex, " kvtier: shard 1 joined: a:1, capacity 1073741824 bytes\n")));
  const int64_t bytes = SlotPoolBytes(model, 0);
  for (const std::string& message : {
           absl::StrCat("model m@test slot 0 (KV heads [0, 1), ", bytes,
                        " bytes) assigned to shard 1 at a:1, incarnation 1"),
           absl::StrCat("model m@test slot 1 (KV heads [1, 2), ", bytes,
                        " bytes) assigned to shard 2 at b:1, incarnation 2"),
           std::string("model m@test ready: all 2 head ranges served"),
           std::string("shard 1 removed: the shard at a:1 left the tier"),
           std::string(
               "model m@test slot 0 vacant; 1 sessions dropped, their K/V lost with shard 1"),
           std::string("shard 2 removed: the shard at b:1 missed heartbeats for 5s"),
           std::string(
               "model m@test slot 1 vacant; 0 sessions dropped, their K/V lost with shard 2"),
           std::string("shard 3 joined: c:1, capacity 1073741824 bytes"),
           std::string("shard 3 removed: the shard at c:1 restarted"),
           absl::StrCat("model m@test slot 0 (KV heads [0, 1), ", bytes,
                        " bytes) assigned to shard 4 at c:1, incarnation 4"),
       }) {
    EXPECT_THAT(lines, Contains(EndsWith(absl::StrCat(": ", message, "\n")))) << message;
  }
}

class OpenModelTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(coordinator_.RegisterModel(TestModel("m", 2, 4, 2, DType::kBF16, 8)).ok());
    shard_a_ = JoinShard("a:1");
    shard_b_ = JoinShard("b:1");
  }
  uint64_t shard_a_ = 0, shard_b_ = 0;
};

TEST_F(OpenModelTest, SessionIdsAreUnguessableAndBoundToTheTenant) {
  absl::StatusOr<v1::OpenSessionResponse> first = Open();
  absl::StatusOr<v1::OpenSessionResponse> second = Open();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->session().session_id().size(), 32u);  // 128 bits, hex
  EXPECT_NE(first->session().session_id(), second->session().session_id());
  v1::GetSessionRequest request;
  request.set_session_id(first->session().session_id());
  request.set_tenant("someone-else");
  EXPECT_EQ(coordinator_.GetSession(request).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Extend(*first, 0, {}, 4, "someone-else").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OpenModelTest, ExtendAllocatesBlocksAndSignsTheLease) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok());
  absl::StatusOr<v1::ExtendResponse> reserved = Extend(*session, 0, {}, 9);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  EXPECT_EQ(reserved->context_len(), 0);
  EXPECT_EQ(reserved->lease().blocks_size(), 3);  // 9 tokens, blocks of 4
  EXPECT_EQ(Stats().blocks_used(), 3);

  // Commit what was written, reserve one more block's worth.
  absl::StatusOr<v1::ExtendResponse> grown = Extend(*session, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 4);
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(grown->context_len(), 9);
  EXPECT_EQ(grown->lease().blocks_size(), 4);
  // The old blocks keep their place in the table.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(grown->lease().blocks(i), reserved->lease().blocks(i));

  const std::string key = Beat(shard_a_).lease_key();
  EXPECT_TRUE(LeaseSignatureValid(key, grown->lease()));
  v1::BlockLease forged = grown->lease();
  forged.set_blocks(0, (forged.blocks(0) + 1) % 8);
  EXPECT_FALSE(LeaseSignatureValid(key, forged));
}

TEST_F(OpenModelTest, ExtendChecksTheCallersViewAndTheCapacity) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE(Extend(*session, 0, {}, 4).ok());
  // Committing more than the blocks hold, or from a stale view, is refused; nothing changes.
  EXPECT_EQ(Extend(*session, 0, {1, 2, 3, 4, 5}, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Extend(*session, 3, {1}, 0).status().code(), absl::StatusCode::kAborted);
  absl::Status negative = Extend(*session, 0, {1, -2}, 0).status();
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("tokens[1]"));
  EXPECT_THAT(Extend(*session, 0, {}, -1).status().message(), HasSubstr("reserve_tokens"));
  // 8 blocks x 4 tokens.
  EXPECT_EQ(Extend(*session, 0, {}, 33).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Stats().blocks_used(), 1);

  absl::StatusOr<v1::OpenSessionResponse> other = Open();
  ASSERT_TRUE(Extend(*other, 0, {}, 28).ok());  // 7 blocks: all the rest
  EXPECT_EQ(Extend(*session, 0, {}, 5).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Stats().blocks_free(), 0);
}

TEST_F(OpenModelTest, FreedBlocksComeBackWithANewGeneration) {
  absl::StatusOr<v1::OpenSessionResponse> first = Open();
  absl::StatusOr<v1::ExtendResponse> lease = Extend(*first, 0, {}, 4);
  ASSERT_TRUE(lease.ok());
  v1::CloseSessionRequest close;
  close.set_session_id(first->session().session_id());
  close.set_tenant("t");
  ASSERT_TRUE(coordinator_.CloseSession(close).ok());
  EXPECT_EQ(coordinator_.CloseSession(close).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().blocks_used(), 0);

  // Free blocks are reused oldest-freed first: taking all 8 reaches the freed one last.
  absl::StatusOr<v1::OpenSessionResponse> second = Open();
  absl::StatusOr<v1::ExtendResponse> reused = Extend(*second, 0, {}, 8 * 4);
  ASSERT_TRUE(reused.ok()) << reused.status();
  ASSERT_EQ(reused->lease().blocks_size(), 8);
  EXPECT_EQ(reused->lease().blocks(7), lease->lease().blocks(0));
  EXPECT_GT(reused->lease().generations(7), lease->lease().generations(0));
}

TEST_F(OpenModelTest, TakeOverFencesThePreviousWriter) {
  absl::StatusOr<v1::OpenSessionResponse> first = Open();
  ASSERT_TRUE(first.ok());
  absl::StatusOr<v1::ExtendResponse> first_lease = Extend(*first, 0, {}, 6);
  ASSERT_TRUE(first_lease.ok());

  v1::GetSessionRequest describe;
  describe.set_session_id(first->session().session_id());
  describe.set_tenant("t");
  absl::StatusOr<v1::GetSessionResponse> described = coordinator_.GetSession(describe);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->session().session_id(), first->session().session_id());
  EXPECT_EQ(described->session().context_len(), 0);

  v1::TakeOverSessionRequest take_over;
  take_over.set_session_id(first->session().session_id());
  take_over.set_tenant("t");
  absl::StatusOr<v1::TakeOverSessionResponse> second = coordinator_.TakeOverSession(take_over);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->grant().writer(), first->grant().writer());
  ASSERT_EQ(second->grant().lease().blocks_size(), 2);
  // The new writer has a higher epoch; the blocks keep their generations (other sessions may
  // share them).
  EXPECT_GT(second->grant().lease().writer_epoch(), first_lease->lease().writer_epoch());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(second->grant().lease().blocks(i), first_lease->lease().blocks(i));
    EXPECT_EQ(second->grant().lease().generations(i), first_lease->lease().generations(i));
  }

  // The first writer can neither commit nor renew its lease (a lost race: ABORTED,
  // WRITER_SUPERSEDED), and its refused Extend changed nothing; the second can.
  absl::Status stale = Extend(*first, 0, {1, 2}, 0).status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(stale), v1::ERROR_REASON_WRITER_SUPERSEDED);
  EXPECT_THAT(stale.message(), HasSubstr("writer"));
  v1::RenewLeaseRequest renew;
  renew.set_session_id(first->session().session_id());
  renew.set_tenant("t");
  renew.set_writer(first->grant().writer());
  absl::Status stale_renewal = coordinator_.RenewLease(renew).status();
  EXPECT_EQ(stale_renewal.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(stale_renewal), v1::ERROR_REASON_WRITER_SUPERSEDED);
  renew.set_writer(second->grant().writer());
  absl::StatusOr<v1::RenewLeaseResponse> renewed = coordinator_.RenewLease(renew);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->context_len(), 0);
  EXPECT_EQ(renewed->lease().generations(0), second->grant().lease().generations(0));
  v1::OpenSessionResponse as_second = *first;
  *as_second.mutable_grant() = second->grant();
  EXPECT_TRUE(Extend(as_second, 0, {1, 2}, 0).ok());
}

TEST_F(OpenModelTest, GetSessionOnlyDescribes) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE(Extend(*session, 0, {}, 4).ok());
  ASSERT_TRUE(Extend(*session, 0, {7, 8}, 0).ok());
  v1::GetSessionRequest describe;
  describe.set_session_id(session->session().session_id());
  describe.set_tenant("t");
  absl::StatusOr<v1::GetSessionResponse> described = coordinator_.GetSession(describe);
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->session().context_len(), 2);
  EXPECT_EQ(described->session().shards_size(), 2);
  const int32_t used = Stats().blocks_used();

  // Describing again and again does not keep the session alive: it expires at its idle
  // deadline from the last Extend.
  harness_.AdvanceClock(absl::Minutes(9));
  ASSERT_TRUE(coordinator_.GetSession(describe).ok());
  EXPECT_EQ(Stats().blocks_used(), used);
  harness_.AdvanceClock(absl::Minutes(2));
  Beat(shard_a_);
  Beat(shard_b_);
  coordinator_.Sweep();
  EXPECT_EQ(coordinator_.GetSession(describe).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OpenModelTest, ContextRaceIsAbortedAndChangesNothing) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE(Extend(*session, 0, {}, 8).ok());
  ASSERT_TRUE(Extend(*session, 0, {1, 2, 3}, 0).ok());
  absl::Status raced = Extend(*session, 1, {4}, 0).status();
  EXPECT_EQ(raced.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(raced), v1::ERROR_REASON_CONTEXT_CHANGED);
  EXPECT_THAT(raced.message(), HasSubstr("expected_context_len"));
  // An Extend refused because blocks ran out commits nothing either.
  absl::Status exhausted = Extend(*session, 3, {4}, 1 << 20).status();
  EXPECT_EQ(exhausted.code(), absl::StatusCode::kResourceExhausted);
  absl::StatusOr<v1::ExtendResponse> next = Extend(*session, 3, {4}, 0);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->context_len(), 4);
}

TEST_F(OpenModelTest, RetentionKeepsASessionUntilItExpires) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(Extend(*session, 0, {}, 4).ok());
  v1::EndTurnRequest end;
  end.set_session_id(session->session().session_id());
  end.set_tenant("t");
  end.set_writer(session->grant().writer());
  end.add_tokens(5);
  end.add_tokens(6);
  end.mutable_retain_for()->set_seconds(30);
  ASSERT_TRUE(CallNow(coordinator_, &Coordinator::EndTurn, end).ok());
  end.mutable_retain_for()->set_seconds(-1);
  EXPECT_THAT(CallNow(coordinator_, &Coordinator::EndTurn, end).status().message(),
              HasSubstr("retain_for"));
  end.mutable_retain_for()->set_seconds(25 * 3600);
  EXPECT_EQ(CallNow(coordinator_, &Coordinator::EndTurn, end).status().code(),
            absl::StatusCode::kInvalidArgument);

  harness_.AdvanceClock(absl::Seconds(29));
  Beat(shard_a_);
  Beat(shard_b_);
  coordinator_.Sweep();
  v1::GetSessionRequest get;
  get.set_session_id(session->session().session_id());
  get.set_tenant("t");
  absl::StatusOr<v1::GetSessionResponse> resumed = coordinator_.GetSession(get);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->session().context_len(), 2);

  // Past its retention it is gone, blocks freed (describing it renewed nothing).
  harness_.AdvanceClock(absl::Seconds(2));
  Beat(shard_a_);
  Beat(shard_b_);
  coordinator_.Sweep();
  EXPECT_EQ(coordinator_.GetSession(get).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().blocks_used(), 0);
}

TEST_F(OpenModelTest, SilentShardDropsItsSessionsWithAReprefillStatus) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(Extend(*session, 0, {}, 8).ok());
  harness_.AdvanceClock(absl::Seconds(4));
  Beat(shard_a_);
  coordinator_.Sweep();
  EXPECT_EQ(Stats().live_shards(), 2);

  harness_.AdvanceClock(absl::Seconds(2));  // b silent for 6 s
  Beat(shard_a_);
  coordinator_.Sweep();
  EXPECT_EQ(Stats().live_shards(), 1);
  EXPECT_EQ(Stats().sessions_lost(), 1);
  EXPECT_EQ(Stats().blocks_used(), 0);
  absl::Status status = Extend(*session, 0, {}, 1).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_THAT(status.message(), HasSubstr("re-prefill"));
  EXPECT_THAT(status.message(), HasSubstr("b:1"));

  v1::HeartbeatRequest late;
  late.set_shard_id(shard_b_);
  EXPECT_EQ(coordinator_.Heartbeat(late).status().code(), absl::StatusCode::kNotFound);

  // A new shard takes the vacant range with a new incarnation; new sessions open.
  JoinShard("c:1");
  absl::StatusOr<v1::OpenSessionResponse> fresh = Open();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(fresh->grant().lease().shard_incarnations(1),
            session->grant().lease().shard_incarnations(1));
}

TEST_F(OpenModelTest, ReRegistrationFromTheSameAddressMeansARestart) {
  absl::StatusOr<v1::OpenSessionResponse> session = Open();
  ASSERT_TRUE(session.ok());
  JoinShard("a:1");
  EXPECT_EQ(ReasonOf(Extend(*session, 0, {}, 1).status()), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_TRUE(Open().ok());
}

}  // namespace
}  // namespace kvtier::test
