// VerifiedLeases: one HMAC per lease while it lives; any edit of a signed field, another key,
// or expiry sends the lease back to the HMAC; the cache stays within its capacity.
#include "shard/verified_leases.h"

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/time_convert.h"

namespace kvtier {
namespace {

class VerifiedLeasesTest : public testing::Test {
 protected:
  v1::BlockLease Lease(const std::string& session) const {
    v1::BlockLease lease;
    lease.set_session_id(session);
    lease.mutable_model()->set_name("m");
    lease.add_blocks(3);
    lease.add_generations(1);
    lease.add_shard_incarnations(1);
    *lease.mutable_expires_at() = ToProtoTimestamp(now_ + absl::Minutes(1));
    SignLease(key_, &lease);
    return lease;
  }

  const std::string key_ = NewLeaseKey();
  const absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
};

TEST_F(VerifiedLeasesTest, ChecksTheHmacOncePerLease) {
  VerifiedLeases leases;
  const v1::BlockLease a = Lease("a");
  for (int step = 0; step < 5; ++step) EXPECT_TRUE(leases.Verify(key_, a, now_));
  EXPECT_EQ(leases.hmac_checks(), 1);
  EXPECT_TRUE(leases.Verify(key_, Lease("b"), now_));
  EXPECT_EQ(leases.hmac_checks(), 2);
}

TEST_F(VerifiedLeasesTest, AnEditedLeaseWithACachedSignatureIsCheckedAndRefused) {
  VerifiedLeases leases;
  const v1::BlockLease lease = Lease("a");
  ASSERT_TRUE(leases.Verify(key_, lease, now_));
  v1::BlockLease edited = lease;
  edited.set_writable_from(1);
  EXPECT_FALSE(leases.Verify(key_, edited, now_));
  edited = lease;
  edited.set_generations(0, 2);
  EXPECT_FALSE(leases.Verify(key_, edited, now_));
  EXPECT_FALSE(leases.Verify(NewLeaseKey(), lease, now_));
  EXPECT_EQ(leases.hmac_checks(), 4);
  EXPECT_TRUE(leases.Verify(key_, lease, now_));
  EXPECT_EQ(leases.hmac_checks(), 4);
}

TEST_F(VerifiedLeasesTest, AnExpiredEntryIsCheckedAgain) {
  VerifiedLeases leases;
  const v1::BlockLease lease = Lease("a");
  ASSERT_TRUE(leases.Verify(key_, lease, now_));
  EXPECT_TRUE(leases.Verify(key_, lease, now_ + absl::Minutes(2)));
  EXPECT_EQ(leases.hmac_checks(), 2);
}

TEST_F(VerifiedLeasesTest, StaysWithinItsCapacity) {
  VerifiedLeases leases(/*capacity=*/4);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(leases.Verify(key_, Lease(std::to_string(i)), now_));
  }
  EXPECT_EQ(leases.hmac_checks(), 10);
  // The latest lease is still cached (the cache was emptied before it went in), an early
  // one is not.
  EXPECT_TRUE(leases.Verify(key_, Lease("9"), now_));
  EXPECT_EQ(leases.hmac_checks(), 10);
  EXPECT_TRUE(leases.Verify(key_, Lease("0"), now_));
  EXPECT_EQ(leases.hmac_checks(), 11);
}

}  // namespace
}  // namespace kvtier
