// Lease signatures (lease_signature.h): a signed lease verifies under its key only, and a
// change to any signed field, however small, breaks the signature.
#include "proto/wire/lease_signature.h"

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kvtier {
namespace {

v1::BlockLease SignedTestLease(const std::string& key) {
  v1::BlockLease lease;
  lease.set_session_id("0123456789abcdef0123456789abcdef");
  lease.mutable_model()->set_name("m");
  lease.mutable_model()->set_version("2026-11-01");
  for (int block : {7, 3, 12}) {
    lease.add_blocks(block);
    lease.add_generations(block + 100);
  }
  lease.add_shard_incarnations(4);
  lease.add_shard_incarnations(9);
  lease.set_writer_epoch(2);
  lease.set_writable_from(8);
  lease.mutable_expires_at()->set_seconds(1'800'000'000);
  lease.mutable_expires_at()->set_nanos(250'000'000);
  SignLease(key, &lease);
  return lease;
}

TEST(LeaseSignatureTest, VerifiesUnderItsKeyOnly) {
  const std::string key = NewLeaseKey();
  EXPECT_EQ(key.size(), 32u);
  EXPECT_NE(key, NewLeaseKey());
  const v1::BlockLease lease = SignedTestLease(key);
  EXPECT_TRUE(LeaseSignatureValid(key, lease));
  EXPECT_FALSE(LeaseSignatureValid(NewLeaseKey(), lease));
  v1::BlockLease unsigned_lease = lease;
  unsigned_lease.clear_signature();
  EXPECT_FALSE(LeaseSignatureValid(key, unsigned_lease));
}

TEST(LeaseSignatureTest, EverySignedFieldIsCovered) {
  const std::string key = NewLeaseKey();
  const std::vector<std::pair<const char*, std::function<void(v1::BlockLease&)>>> edits = {
      {"session_id", [](v1::BlockLease& l) { l.set_session_id("x"); }},
      {"model.name", [](v1::BlockLease& l) { l.mutable_model()->set_name("n"); }},
      {"model.version", [](v1::BlockLease& l) { l.mutable_model()->set_version("2026-11-02"); }},
      // The name/version boundary is part of the encoding.
      {"model split",
       [](v1::BlockLease& l) {
         l.mutable_model()->set_name("m2026-11-01");
         l.mutable_model()->clear_version();
       }},
      {"blocks", [](v1::BlockLease& l) { l.set_blocks(1, 4); }},
      {"a block more", [](v1::BlockLease& l) { l.add_blocks(1); }},
      {"generations", [](v1::BlockLease& l) { l.set_generations(2, 1); }},
      {"shard_incarnations", [](v1::BlockLease& l) { l.set_shard_incarnations(0, 5); }},
      {"writer_epoch", [](v1::BlockLease& l) { l.set_writer_epoch(3); }},
      {"writable_from", [](v1::BlockLease& l) { l.set_writable_from(16); }},
      {"expires_at.seconds", [](v1::BlockLease& l) { l.mutable_expires_at()->set_seconds(1); }},
      {"expires_at.nanos", [](v1::BlockLease& l) { l.mutable_expires_at()->set_nanos(1); }},
  };
  for (const auto& [what, edit] : edits) {
    SCOPED_TRACE(what);
    v1::BlockLease lease = SignedTestLease(key);
    edit(lease);
    EXPECT_FALSE(LeaseSignatureValid(key, lease));
  }
}

}  // namespace
}  // namespace kvtier
