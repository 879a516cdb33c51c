// ShardState, directly: which pools an assignment keeps, replaces and drops (and reports
// ready), the capacity bound, and the ranges and assignments it refuses (naming them) without
// disturbing the rest.
#include "shard/shard_state.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cache/kv/dtype.h"
#include "cache/kv/thread_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/model_spec.h"
#include "tests/shard/test_shard.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Slot 0 of the test model in fp16: 2 layers x 32 blocks x 2 heads x 4 tokens x 64 x 2 bytes,
// for K and V.
constexpr int64_t kPoolBytes = int64_t{2} * 2 * 32 * 2 * 4 * 64 * 2;

// The test model renamed `name`.
v1::ModelId IdOf(const std::string& name) {
  v1::ModelId id = TestModelId();
  id.set_name(name);
  return id;
}

// Slot 0 of the test model, renamed `name`, at `incarnation`.
v1::HostedRange Range(const std::string& name, uint64_t incarnation) {
  v1::ModelSpec spec = TestModelSpec(DType::kF16);
  *spec.mutable_id() = IdOf(name);
  v1::HostedRange range = TestRange(spec, 0);
  range.set_incarnation(incarnation);
  return range;
}

v1::ShardAssignment Assignment(const std::vector<v1::HostedRange>& ranges,
                               const std::string& key = "key") {
  v1::ShardAssignment assignment;
  assignment.set_lease_key(key);
  for (const v1::HostedRange& range : ranges) *assignment.add_ranges() = range;
  return assignment;
}

class ShardStateTest : public testing::Test {
 protected:
  // The model hosted under `name`; fails the test if there is none.
  std::shared_ptr<HostedModel> Hosted(const std::string& name) const {
    absl::StatusOr<ShardState::Hosted> hosted = state_.Find("model", IdOf(name));
    EXPECT_TRUE(hosted.ok()) << hosted.status();
    return hosted.ok() ? hosted->model : nullptr;
  }

  bool IsHosted(const std::string& name) const { return state_.Find("model", IdOf(name)).ok(); }

  ThreadPool threads_{1};
  ShardState state_{3 * kPoolBytes, PoolFactoryFor(PoolDevice{}, &threads_)};
};

TEST_F(ShardStateTest, KeepsUnchangedRangesReplacesChangedOnesAndDropsTheRest) {
  ASSERT_TRUE(state_.Apply(Assignment({Range("a", 1), Range("b", 1)})).ok());
  const std::shared_ptr<HostedModel> a = Hosted("a");
  const std::shared_ptr<HostedModel> b = Hosted("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->pool().shape().total_bytes(), kPoolBytes);
  EXPECT_EQ(state_.Find("model", IdOf("a"))->lease_key, "key");
  EXPECT_THAT(state_.ReadyIncarnations(), UnorderedElementsAre(1, 1));

  // b restarted in its slot: a new incarnation, a new pool.
  ASSERT_TRUE(state_.Apply(Assignment({Range("a", 1), Range("b", 2)})).ok());
  EXPECT_EQ(Hosted("a"), a);
  EXPECT_NE(Hosted("b"), b);
  EXPECT_EQ(Hosted("b")->range().incarnation(), 2u);
  EXPECT_THAT(state_.ReadyIncarnations(), UnorderedElementsAre(1, 2));

  ASSERT_TRUE(state_.Apply(Assignment({Range("b", 2)})).ok());
  EXPECT_FALSE(IsHosted("a"));
  EXPECT_TRUE(IsHosted("b"));
  EXPECT_EQ(a->pool().shape().num_blocks, kTestBlocks);  // still usable by whoever holds it

  state_.Reset();
  EXPECT_FALSE(IsHosted("b"));
  EXPECT_THAT(state_.ReadyIncarnations(), IsEmpty());
  const absl::Status missing = state_.Find("plan.model", IdOf("b")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(),
              HasSubstr("plan.model.name: this shard holds no range of model \"b\""));
}

TEST_F(ShardStateTest, HostsWithinCapacityAndRefusesTheRangesBeyond) {
  const absl::Status status =
      state_.Apply(Assignment({Range("a", 1), Range("b", 1), Range("c", 1), Range("d", 1)}));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("assignment.ranges[3] (model \"d\"): slot 0 needs"));
  EXPECT_TRUE(IsHosted("a"));
  EXPECT_TRUE(IsHosted("b"));
  EXPECT_TRUE(IsHosted("c"));
  EXPECT_FALSE(IsHosted("d"));

  // Dropping one frees room for another.
  EXPECT_TRUE(state_.Apply(Assignment({Range("a", 1), Range("b", 1), Range("d", 1)})).ok());
  EXPECT_TRUE(IsHosted("d"));
}

TEST_F(ShardStateTest, RefusesInvalidRangesNamingThemAndHostsTheRest) {
  v1::HostedRange bad_heads = Range("h", 1);
  bad_heads.mutable_heads()->set_kv_head_end(bad_heads.model().num_kv_heads() + 1);
  v1::HostedRange bad_slot = Range("s", 1);
  bad_slot.set_slot(2);
  v1::HostedRange bad_spec = Range("p", 1);
  bad_spec.mutable_model()->set_head_dim(0);
  struct Case {
    v1::HostedRange range;
    std::string message;
  };
  const std::vector<Case> cases = {
      {bad_heads,
       absl::StrCat("assignment.ranges[1] (model \"h\"): heads: expected a non-empty range of "
                    "model h's KV heads [0, ",
                    bad_heads.model().num_kv_heads(), "), got [0, ",
                    bad_heads.model().num_kv_heads() + 1, ")")},
      {bad_slot, "assignment.ranges[1] (model \"s\"): slot: expected 0..1, got 2"},
      {bad_spec, "assignment.ranges[1] (model \"p\"): model.head_dim: expected 1..512, got 0"},
      {Range("a", 2), "assignment.ranges[1] (model \"a\"): listed twice"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    const absl::Status status = state_.Apply(Assignment({Range("a", 1), c.range}));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
    ASSERT_NE(Hosted("a"), nullptr);
    EXPECT_EQ(Hosted("a")->range().incarnation(), 1u);
  }
}

TEST_F(ShardStateTest, RefusesAnAssignmentWithoutLeaseKeyAndKeepsTheCurrentOne) {
  ASSERT_TRUE(state_.Apply(Assignment({Range("a", 1)})).ok());
  const std::shared_ptr<HostedModel> a = Hosted("a");
  const absl::Status status = state_.Apply(Assignment({Range("b", 1)}, ""));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("assignment.lease_key"));
  EXPECT_EQ(Hosted("a"), a);
  EXPECT_EQ(state_.Find("model", IdOf("a"))->lease_key, "key");
  EXPECT_FALSE(IsHosted("b"));
}

}  // namespace
}  // namespace kvtier
