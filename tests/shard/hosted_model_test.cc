// HostedModel's revocation and block copies, directly: a revoked block refuses leases below
// its revoked generation (and passes those at or above it), a revoked session refuses all its
// leases, both with reason INVALIDATED, in AdmitLease and in the check before every layer;
// CopyBlocks copies exactly the first num_tokens slots of every layer, checks everything
// before copying anything, and refuses a revoked source.
#include "shard/hosted_model.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cache/kv/thread_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/time_convert.h"
#include "tests/shard/test_shard.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

constexpr char kKey[] = "key";
constexpr uint64_t kIncarnation = 7;

bool IsInvalidated(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition &&
         ReasonOf(status) == v1::ERROR_REASON_INVALIDATED;
}

class HostedModelTest : public testing::Test {
 protected:
  HostedModelTest() {
    v1::HostedRange range = TestRange(TestModelSpec(DType::kF16), 0);
    range.set_incarnation(kIncarnation);
    absl::StatusOr<std::unique_ptr<HostedModel>> model =
        HostedModel::Create(range, int64_t{1} << 30, PoolFactoryFor(PoolDevice{}, &threads_));
    EXPECT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  // A signed lease of `session` over `blocks`, each at `generation`.
  v1::BlockLease Lease(const std::string& session, const std::vector<int32_t>& blocks,
                       uint64_t generation) const {
    v1::BlockLease lease;
    lease.set_session_id(session);
    *lease.mutable_model() = model_->spec().id();
    for (int32_t block : blocks) {
      lease.add_blocks(block);
      lease.add_generations(generation);
    }
    lease.add_shard_incarnations(kIncarnation);
    lease.add_shard_incarnations(kIncarnation + 1);
    lease.set_writer_epoch(1);
    *lease.mutable_expires_at() = ToProtoTimestamp(now_ + absl::Minutes(1));
    SignLease(kKey, &lease);
    return lease;
  }

  absl::Status Admit(const v1::BlockLease& lease) {
    return model_->AdmitLease(lease, 0, kKey, now_);
  }

  static v1::RevokeRequest RevokeBlock(int32_t block, uint64_t generation) {
    v1::RevokeRequest request;
    request.add_blocks(block);
    request.add_generations(generation);
    return request;
  }

  // Fresh random bytes in every slot of every layer.
  void FillPool() {
    const KvPoolShape& shape = model_->pool().shape();
    std::vector<int64_t> slots(int64_t{shape.num_blocks} * shape.block_size);
    for (size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<int64_t>(i);
    std::mt19937 gen(std::random_device{}());
    std::string k(slots.size() * shape.token_bytes(), '\0');
    std::string v(k.size(), '\0');
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      for (char& c : k) c = static_cast<char>(gen());
      for (char& c : v) c = static_cast<char>(gen());
      ASSERT_TRUE(model_->pool().WriteKv(layer, slots, k, v).ok());
    }
  }

  // The K and V bytes of `block`'s slots in `layer`.
  std::pair<std::string, std::string> ReadBlock(int layer, int32_t block) {
    const KvPoolShape& shape = model_->pool().shape();
    std::vector<int64_t> slots;
    for (int t = 0; t < shape.block_size; ++t) {
      slots.push_back(int64_t{block} * shape.block_size + t);
    }
    std::string k(slots.size() * shape.token_bytes(), '\0');
    std::string v(k.size(), '\0');
    EXPECT_TRUE(model_->pool().ReadKv(layer, slots, absl::MakeSpan(k), absl::MakeSpan(v)).ok());
    return {k, v};
  }

  ThreadPool threads_{1};
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::unique_ptr<HostedModel> model_;
};

TEST_F(HostedModelTest, ARevokedBlockRefusesLeasesBelowItsRevokedGeneration) {
  const v1::BlockLease old_lease = Lease("s", {3, 4}, 2);
  ASSERT_TRUE(Admit(old_lease).ok());
  ASSERT_TRUE(model_->Revoke(RevokeBlock(4, 3)).ok());

  EXPECT_TRUE(IsInvalidated(model_->CheckLeaseCurrent(old_lease)));
  const absl::Status admitted = Admit(old_lease);
  EXPECT_TRUE(IsInvalidated(admitted)) << admitted;
  EXPECT_THAT(admitted.message(), HasSubstr("lease.blocks[1]"));
  EXPECT_TRUE(IsInvalidated(Admit(Lease("other", {4}, 1))));
  // The block handed out again: leases at or above the revoked generation pass.
  EXPECT_TRUE(Admit(Lease("next", {4}, 3)).ok());
  EXPECT_TRUE(Admit(Lease("later", {4}, 5)).ok());
  EXPECT_TRUE(model_->CheckLeaseCurrent(Lease("later", {4}, 5)).ok());
  // Blocks not revoked are untouched.
  EXPECT_TRUE(Admit(Lease("s2", {3}, 2)).ok());
}

TEST_F(HostedModelTest, ARevokedSessionRefusesAllItsLeases) {
  const v1::BlockLease lease = Lease("gone", {1, 2}, 1);
  ASSERT_TRUE(Admit(lease).ok());
  v1::RevokeRequest request;
  request.add_sessions()->set_session_id("gone");
  *request.mutable_sessions(0)->mutable_expires_at() = ToProtoTimestamp(now_ + absl::Hours(1));
  ASSERT_TRUE(model_->Revoke(request).ok());
  EXPECT_TRUE(IsInvalidated(model_->CheckLeaseCurrent(lease)));
  EXPECT_TRUE(IsInvalidated(Admit(lease)));
  EXPECT_TRUE(IsInvalidated(Admit(Lease("gone", {5}, 9))));
  EXPECT_TRUE(Admit(Lease("stays", {1, 2}, 1)).ok());
}

// The signatures of these leases are cached after their first step; revocation and take-over
// are refused at the very next admission and the next layer's check all the same.
TEST_F(HostedModelTest, ACachedLeaseIsRefusedOnceItsSessionIsRevoked) {
  const v1::BlockLease lease = Lease("cached", {4, 5}, 1);
  ASSERT_TRUE(Admit(lease).ok());
  ASSERT_TRUE(Admit(lease).ok());
  v1::RevokeRequest request;
  request.add_sessions()->set_session_id("cached");
  ASSERT_TRUE(model_->Revoke(request).ok());
  EXPECT_TRUE(IsInvalidated(Admit(lease)));
  EXPECT_TRUE(IsInvalidated(model_->CheckLeaseCurrent(lease)));
}

TEST_F(HostedModelTest, ACachedLeaseIsRefusedOnceItsBlockIsRevoked) {
  const v1::BlockLease lease = Lease("cached", {6, 7}, 1);
  ASSERT_TRUE(Admit(lease).ok());
  ASSERT_TRUE(model_->Revoke(RevokeBlock(7, 2)).ok());
  EXPECT_TRUE(IsInvalidated(Admit(lease)));
  EXPECT_TRUE(IsInvalidated(model_->CheckLeaseCurrent(lease)));
}

TEST_F(HostedModelTest, ACachedLeaseIsRefusedOnceTheSessionWasTakenOver) {
  const v1::BlockLease old_writer = Lease("taken", {8}, 1);
  ASSERT_TRUE(Admit(old_writer).ok());
  ASSERT_TRUE(Admit(old_writer).ok());
  v1::BlockLease new_writer = old_writer;
  new_writer.set_writer_epoch(2);
  SignLease(kKey, &new_writer);
  ASSERT_TRUE(Admit(new_writer).ok());
  const absl::Status status = Admit(old_writer);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("lease.writer_epoch"));
  EXPECT_EQ(model_->CheckLeaseCurrent(old_writer).code(), absl::StatusCode::kPermissionDenied);
}

// A cached signature vouches only for the exact lease it was verified with.
TEST_F(HostedModelTest, ACachedSignatureDoesNotCoverAnEditedLease) {
  const v1::BlockLease lease = Lease("edited", {9, 10}, 1);
  ASSERT_TRUE(Admit(lease).ok());
  v1::BlockLease edited = lease;
  edited.set_blocks(1, 11);
  absl::Status status = Admit(edited);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("lease: bad signature"));
  status = model_->AdmitLease(lease, 0, "another key", now_);
  EXPECT_THAT(status.message(), HasSubstr("lease: bad signature"));
  EXPECT_TRUE(Admit(lease).ok());
}

TEST_F(HostedModelTest, ARevokeWithABadBlockRevokesNothing) {
  v1::RevokeRequest request = RevokeBlock(1, 5);
  request.add_blocks(kTestBlocks);
  request.add_generations(5);
  request.add_sessions()->set_session_id("s");
  const absl::Status status = model_->Revoke(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("blocks[1]"));
  v1::RevokeRequest uneven = RevokeBlock(1, 5);
  uneven.add_blocks(2);
  EXPECT_EQ(model_->Revoke(uneven).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Admit(Lease("s", {1, 2}, 1)).ok());
}

TEST_F(HostedModelTest, CopyBlocksCopiesTheFirstSlotsOfEveryLayer) {
  FillPool();
  const int layers = model_->pool().shape().num_layers;
  const int token_bytes = static_cast<int>(model_->pool().shape().token_bytes());
  std::vector<std::pair<std::string, std::string>> target_before;
  for (int layer = 0; layer < layers; ++layer) target_before.push_back(ReadBlock(layer, 9));

  google::protobuf::RepeatedPtrField<v1::BlockCopy> copies;
  v1::BlockCopy* copy = copies.Add();
  copy->set_source(5);
  copy->set_target(9);
  copy->set_num_tokens(3);
  ASSERT_TRUE(model_->CopyBlocks(copies).ok());
  for (int layer = 0; layer < layers; ++layer) {
    const auto [source_k, source_v] = ReadBlock(layer, 5);
    const auto [k, v] = ReadBlock(layer, 9);
    const size_t copied = 3 * token_bytes;
    EXPECT_EQ(k.substr(0, copied), source_k.substr(0, copied)) << layer;
    EXPECT_EQ(v.substr(0, copied), source_v.substr(0, copied)) << layer;
    EXPECT_EQ(k.substr(copied), target_before[layer].first.substr(copied)) << layer;
    EXPECT_EQ(v.substr(copied), target_before[layer].second.substr(copied)) << layer;
  }
}

TEST_F(HostedModelTest, CopyBlocksChecksEverythingBeforeCopyingAnything) {
  FillPool();
  const auto before = ReadBlock(0, 9);
  struct Case {
    int32_t source, target, num_tokens;
    std::string field;
  };
  for (const Case& c :
       {Case{kTestBlocks, 8, 1, "copies[1].source"}, Case{1, -1, 1, "copies[1].target"},
        Case{8, 8, 1, "copies[1].target"}, Case{1, 8, 0, "copies[1].num_tokens"},
        Case{1, 8, kTestBlockSize + 1, "copies[1].num_tokens"}}) {
    google::protobuf::RepeatedPtrField<v1::BlockCopy> copies;
    v1::BlockCopy* good = copies.Add();
    good->set_source(5);
    good->set_target(9);
    good->set_num_tokens(4);
    v1::BlockCopy* bad = copies.Add();
    bad->set_source(c.source);
    bad->set_target(c.target);
    bad->set_num_tokens(c.num_tokens);
    const absl::Status status = model_->CopyBlocks(copies);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
    EXPECT_EQ(ReadBlock(0, 9), before) << c.field;
  }
}

TEST_F(HostedModelTest, CopyBlocksRefusesARevokedSource) {
  FillPool();
  const auto before = ReadBlock(0, 9);
  ASSERT_TRUE(model_->Revoke(RevokeBlock(5, 4)).ok());
  google::protobuf::RepeatedPtrField<v1::BlockCopy> copies;
  v1::BlockCopy* copy = copies.Add();
  copy->set_source(5);
  copy->set_source_generation(3);
  copy->set_target(9);
  copy->set_num_tokens(2);
  EXPECT_TRUE(IsInvalidated(model_->CopyBlocks(copies)));
  EXPECT_EQ(ReadBlock(0, 9), before);
  copy->set_source_generation(4);
  EXPECT_TRUE(model_->CopyBlocks(copies).ok());
}

}  // namespace
}  // namespace kvtier
