// BlockManager: matching within a namespace only, full committed blocks only, shared blocks
// referenced by several sessions, eviction leaves first in the policy's order, exhaustion that
// changes nothing, generations, and a randomized run checked step by step against a simple
// model of who holds what.
#include "cache/blocks/block_manager.h"

#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int32_t kBlockSize = 4;
constexpr NamespaceId kTenantA = 11;
constexpr NamespaceId kTenantB = 22;

std::unique_ptr<BlockManager> NewManager(int32_t num_blocks, const std::string& policy = "lru") {
  return std::make_unique<BlockManager>(num_blocks, kBlockSize,
                                        *NewEvictionPolicy(policy, num_blocks));
}

// Tokens first, first + 1, ...: `blocks` full blocks.
std::vector<int32_t> Tokens(int32_t first, int blocks) {
  std::vector<int32_t> tokens(blocks * kBlockSize);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = first + static_cast<int32_t>(i);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A session's blocks for `tokens`: the cached prefix matched, the rest fresh, and every full
// block cached in chain order as if its K/V had been committed.
std::vector<BlockId> Prefill(BlockManager& manager, NamespaceId ns,
                             const std::vector<int32_t>& tokens) {
  const int32_t needed = (static_cast<int32_t>(tokens.size()) + kBlockSize - 1) / kBlockSize;
  const std::vector<BlockId> matched = manager.Match({ns}, kNoBlock, tokens, needed);
  std::vector<BlockId> blocks;
  EXPECT_TRUE(
      manager.Reserve(matched, needed - static_cast<int32_t>(matched.size()), &blocks).ok());
  for (size_t i = matched.size(); i < blocks.size(); ++i) {
    if ((i + 1) * kBlockSize > tokens.size()) break;  // a partial tail stays private
    manager.Cache(blocks[i], ns, i == 0 ? kNoBlock : blocks[i - 1],
                  absl::MakeConstSpan(tokens).subspan(i * kBlockSize, kBlockSize));
  }
  return blocks;
}

void ReleaseAll(BlockManager& manager, const std::vector<BlockId>& blocks) {
  for (BlockId block : blocks) ASSERT_TRUE(manager.Release(block).ok());
}

TEST(BlockManagerTest, SharesCommittedFullBlocksWithinANamespaceOnly) {
  std::unique_ptr<BlockManager> manager = NewManager(16);
  const std::vector<int32_t> system = Tokens(100, 2);
  const std::vector<BlockId> a = Prefill(*manager, kTenantA, Concat(system, Tokens(500, 1)));
  ASSERT_EQ(a.size(), 3u);

  // Another conversation of the same tenant shares the system prompt's blocks, not the tail.
  const std::vector<int32_t> other = Concat(system, Tokens(900, 1));
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, other, 3), ElementsAre(a[0], a[1]));
  // Another tenant matches nothing, even with the very same tokens.
  EXPECT_THAT(manager->Match({kTenantB}, kNoBlock, other, 3), IsEmpty());
  // Matching never reads past a partial block, nor past max_blocks.
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, Concat(system, {1, 2}), 9),
              ElementsAre(a[0], a[1]));
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, other, 1), ElementsAre(a[0]));
  // A chain is matched from its start: the second block alone is no prefix.
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, Tokens(104, 1), 1), IsEmpty());

  const std::vector<BlockId> b = Prefill(*manager, kTenantA, other);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], a[0]);
  EXPECT_EQ(b[1], a[1]);
  EXPECT_NE(b[2], a[2]);
  EXPECT_EQ(manager->refcount(a[0]), 2);
  EXPECT_EQ(manager->refcount(a[2]), 1);
  EXPECT_EQ(manager->counts().referenced, 4);
}

TEST(BlockManagerTest, OnlyCachedBlocksMatchAndAPartialTailIsFreed) {
  std::unique_ptr<BlockManager> manager = NewManager(8);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(manager->Reserve({}, 2, &blocks).ok());
  const std::vector<int32_t> tokens = Tokens(7, 2);
  // Reserved but not committed: nothing matches (invariant 2).
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, tokens, 2), IsEmpty());
  // A block of the wrong size, an unheld parent, or a chain that skips its parent is refused.
  EXPECT_FALSE(manager->Cache(blocks[0], kTenantA, kNoBlock, Tokens(7, 2)));
  EXPECT_FALSE(manager->Cache(blocks[1], kTenantA, 5, Tokens(11, 1)));
  ASSERT_TRUE(manager->Cache(blocks[0], kTenantA, kNoBlock, Tokens(7, 1)));
  EXPECT_FALSE(manager->Cache(blocks[0], kTenantA, kNoBlock, Tokens(7, 1)));  // already cached
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, tokens, 2), ElementsAre(blocks[0]));

  ReleaseAll(*manager, blocks);
  const BlockCounts counts = manager->counts();
  EXPECT_EQ(counts.referenced, 0);
  EXPECT_EQ(counts.cached, 1);  // the committed full block stays matchable
  EXPECT_EQ(counts.free, 7);    // the uncached one is free at once
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, tokens, 2), ElementsAre(blocks[0]));
}

TEST(BlockManagerTest, DuplicateContentStaysPrivate) {
  std::unique_ptr<BlockManager> manager = NewManager(8);
  std::vector<BlockId> first, second;
  ASSERT_TRUE(manager->Reserve({}, 1, &first).ok());
  ASSERT_TRUE(manager->Reserve({}, 1, &second).ok());
  ASSERT_TRUE(manager->Cache(first[0], kTenantA, kNoBlock, Tokens(3, 1)));
  EXPECT_FALSE(manager->Cache(second[0], kTenantA, kNoBlock, Tokens(3, 1)));
  EXPECT_TRUE(manager->Cache(second[0], kTenantB, kNoBlock, Tokens(3, 1)));  // another namespace
  ReleaseAll(*manager, first);
  EXPECT_EQ(manager->counts().cached, 1);
}

TEST(BlockManagerTest, FreeBlocksAreReusedOldestFirst) {
  std::unique_ptr<BlockManager> manager = NewManager(4);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(manager->Reserve({}, 4, &blocks).ok());
  EXPECT_THAT(blocks, ElementsAre(0, 1, 2, 3));
  for (BlockId block : {2, 0, 3}) ASSERT_TRUE(manager->Release(block).ok());
  std::vector<BlockId> again;
  ASSERT_TRUE(manager->Reserve({}, 3, &again).ok());
  EXPECT_THAT(again, ElementsAre(2, 0, 3));
  EXPECT_EQ(manager->generation(2), 2u);
  EXPECT_EQ(manager->generation(1), 1u);
}

TEST(BlockManagerTest, EvictsLeastRecentlyUsedLeavesFirst) {
  std::unique_ptr<BlockManager> manager = NewManager(6);
  // Chain x (3 blocks), then chain y (2 blocks), both released: 5 cached blocks.
  const std::vector<BlockId> x = Prefill(*manager, kTenantA, Tokens(0, 3));
  const std::vector<BlockId> y = Prefill(*manager, kTenantA, Tokens(1000, 2));
  ReleaseAll(*manager, x);
  ReleaseAll(*manager, y);
  ASSERT_EQ(manager->counts().cached, 5);
  // Use x's first block again, so y is older than x's head but x's tail is older still.
  std::vector<BlockId> hit;
  const std::vector<BlockId> head = manager->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1);
  ASSERT_TRUE(manager->Reserve(head, 0, &hit).ok());
  ReleaseAll(*manager, hit);

  // Each fresh block beyond the free one evicts exactly the next victim: x's tail (the oldest
  // leaves), then y from its tail, and x's recently used head last.
  std::vector<BlockId> evicted;
  std::vector<BlockId> taken;
  ASSERT_TRUE(manager->Reserve({}, 1, &taken).ok());  // the free block
  for (int i = 0; i < 5; ++i) {
    std::vector<BlockId> one;
    ASSERT_TRUE(manager->Reserve({}, 1, &one).ok());
    evicted.push_back(one[0]);
  }
  EXPECT_THAT(evicted, ElementsAre(x[2], x[1], y[1], y[0], x[0]));
  EXPECT_EQ(manager->counts().evicted, 5);
}

TEST(BlockManagerTest, ExhaustionOnlyWhenNothingCanGoAndItChangesNothing) {
  std::unique_ptr<BlockManager> manager = NewManager(6);
  const std::vector<BlockId> held = Prefill(*manager, kTenantA, Tokens(0, 3));
  const std::vector<BlockId> gone = Prefill(*manager, kTenantA, Tokens(100, 2));
  ReleaseAll(*manager, gone);
  EXPECT_EQ(manager->Available(), 3);  // 1 free + 2 cached

  // Matching cached blocks makes them unavailable for eviction in the same call.
  const std::vector<BlockId> matched = manager->Match({kTenantA}, kNoBlock, Tokens(100, 2), 2);
  ASSERT_EQ(matched.size(), 2u);
  std::vector<BlockId> out;
  const absl::Status refused = manager->Reserve(matched, 2, &out);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(out, IsEmpty());
  EXPECT_EQ(manager->Available(), 3);
  EXPECT_EQ(manager->refcount(matched[0]), 0);
  EXPECT_EQ(manager->counts().evicted, 0);
  EXPECT_EQ(manager->Match({kTenantA}, kNoBlock, Tokens(100, 2), 2), matched);

  ASSERT_TRUE(manager->Reserve(matched, 1, &out).ok());
  EXPECT_EQ(manager->refcount(matched[1]), 1);
  EXPECT_EQ(manager->Available(), 0);
  // Referenced blocks never go: with everything held, one more is refused.
  std::vector<BlockId> more;
  EXPECT_EQ(manager->Reserve({}, 1, &more).code(), absl::StatusCode::kResourceExhausted);
  for (BlockId block : held) EXPECT_TRUE(manager->cached(block));
}

TEST(BlockManagerTest, RevivedBlocksKeepTheirGenerationAndReusedOnesRaiseIt) {
  std::unique_ptr<BlockManager> manager = NewManager(2);
  const std::vector<BlockId> first = Prefill(*manager, kTenantA, Tokens(0, 1));
  const uint64_t generation = manager->generation(first[0]);
  ReleaseAll(*manager, first);
  const std::vector<BlockId> revived = Prefill(*manager, kTenantA, Tokens(0, 1));
  EXPECT_EQ(revived, first);
  EXPECT_EQ(manager->generation(first[0]), generation);
  ReleaseAll(*manager, revived);
  std::vector<BlockId> all;
  ASSERT_TRUE(manager->Reserve({}, 2, &all).ok());  // evicts it
  EXPECT_GT(manager->generation(first[0]), generation);
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1), IsEmpty());
}

TEST(BlockManagerTest, BadArgumentsAreErrorsThatChangeNothing) {
  std::unique_ptr<BlockManager> manager = NewManager(4);
  EXPECT_EQ(manager->Release(4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager->Release(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager->Release(0).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<BlockId> out;
  EXPECT_EQ(manager->Reserve({}, -1, &out).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<BlockId> fake = {1};
  EXPECT_EQ(manager->Reserve(fake, 0, &out).code(), absl::StatusCode::kInvalidArgument);
  // Cached blocks out of chain order are no match to take.
  const std::vector<BlockId> chain = Prefill(*manager, kTenantA, Tokens(0, 2));
  ReleaseAll(*manager, chain);
  const std::vector<BlockId> tail_only = {chain[1]};
  EXPECT_EQ(manager->Reserve(tail_only, 0, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out, IsEmpty());
  const BlockCounts counts = manager->counts();
  EXPECT_EQ(counts.free, 2);
  EXPECT_EQ(counts.cached, 2);
}

TEST(BlockManagerTest, LfuAgingKeepsAPopularPrefixOverNewerOneOffs) {
  std::unique_ptr<BlockManager> lfu = NewManager(4, "lfu-aging");
  // A shared prefix used by 5 conversations, then two one-off documents, all released.
  for (int i = 0; i < 5; ++i) ReleaseAll(*lfu, Prefill(*lfu, kTenantA, Tokens(0, 1)));
  ReleaseAll(*lfu, Prefill(*lfu, kTenantA, Tokens(100, 1)));
  ReleaseAll(*lfu, Prefill(*lfu, kTenantA, Tokens(200, 1)));
  std::vector<BlockId> out;
  ASSERT_TRUE(lfu->Reserve({}, 3, &out).ok());  // 1 free, 2 evicted
  EXPECT_THAT(lfu->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1), testing::SizeIs(1));
  EXPECT_THAT(lfu->Match({kTenantA}, kNoBlock, Tokens(100, 1), 1), IsEmpty());
  EXPECT_THAT(lfu->Match({kTenantA}, kNoBlock, Tokens(200, 1), 1), IsEmpty());

  // LRU, the same run, keeps the newest instead.
  std::unique_ptr<BlockManager> lru = NewManager(4, "lru");
  for (int i = 0; i < 5; ++i) ReleaseAll(*lru, Prefill(*lru, kTenantA, Tokens(0, 1)));
  ReleaseAll(*lru, Prefill(*lru, kTenantA, Tokens(100, 1)));
  ReleaseAll(*lru, Prefill(*lru, kTenantA, Tokens(200, 1)));
  out.clear();
  ASSERT_TRUE(lru->Reserve({}, 3, &out).ok());
  EXPECT_THAT(lru->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1), IsEmpty());
  EXPECT_THAT(lru->Match({kTenantA}, kNoBlock, Tokens(200, 1), 1), testing::SizeIs(1));
}

TEST(BlockManagerTest, SegmentedLruProtectsReusedBlocksWithinItsShare) {
  std::unique_ptr<BlockManager> slru = NewManager(8, "slru");
  // A prefix used twice, then four one-off documents, all released: 5 cached, 3 free.
  for (int i = 0; i < 2; ++i) ReleaseAll(*slru, Prefill(*slru, kTenantA, Tokens(0, 1)));
  for (int doc = 1; doc <= 4; ++doc) {
    ReleaseAll(*slru, Prefill(*slru, kTenantA, Tokens(100 * doc, 1)));
  }
  std::vector<BlockId> out;
  ASSERT_TRUE(slru->Reserve({}, 5, &out).ok());  // 3 free, then 2 evicted
  // The one-offs go oldest first; the reused prefix (1 of 5 candidates, within 30%) stays.
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1), testing::SizeIs(1));
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(100, 1), 1), IsEmpty());
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(200, 1), 1), IsEmpty());
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(300, 1), 1), testing::SizeIs(1));
  // Protected blocks beyond their share go too: with 1 protected of 3 candidates (33%), the
  // protected one is next.
  out.clear();
  ASSERT_TRUE(slru->Reserve({}, 1, &out).ok());
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(0, 1), 1), IsEmpty());
  EXPECT_THAT(slru->Match({kTenantA}, kNoBlock, Tokens(300, 1), 1), testing::SizeIs(1));
}

// `count` fresh random token ids.
std::vector<int32_t> RandomTokens(int count) {
  static std::mt19937 gen(std::random_device{}());
  std::uniform_int_distribution<int32_t> id(0, 1 << 20);
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = id(gen);
  return tokens;
}

std::vector<int32_t> Head(const std::vector<int32_t>& tokens, int count) {
  return std::vector<int32_t>(tokens.begin(), tokens.begin() + count);
}

TEST(BlockManagerTest, ShareAddsAReferenceAndItsErrorsChangeNothing) {
  std::unique_ptr<BlockManager> manager = NewManager(8);
  const std::vector<BlockId> held = Prefill(*manager, kTenantA, RandomTokens(2 * kBlockSize + 1));
  ASSERT_EQ(held.size(), 3u);
  ASSERT_TRUE(manager->Share({held[0], held[1]}).ok());
  EXPECT_EQ(manager->refcount(held[0]), 2);
  EXPECT_EQ(manager->refcount(held[1]), 2);
  EXPECT_EQ(manager->refcount(held[2]), 1);

  std::vector<BlockId> spare;
  ASSERT_TRUE(manager->Reserve({}, 1, &spare).ok());
  ASSERT_TRUE(manager->Release(spare[0]).ok());  // free again
  const BlockCounts before = manager->counts();
  EXPECT_EQ(manager->Share({held[2], 8}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager->Share({held[2], -1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager->Share({held[2], spare[0]}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager->refcount(held[2]), 1);
  EXPECT_EQ(manager->refcount(spare[0]), 0);
  EXPECT_EQ(manager->counts().referenced, before.referenced);

  // Shared blocks stay referenced until the last holder releases them.
  ReleaseAll(*manager, {held[0], held[1]});
  EXPECT_EQ(manager->counts().referenced, 3);
  ReleaseAll(*manager, held);
  EXPECT_EQ(manager->counts().referenced, 0);
  EXPECT_EQ(manager->counts().cached, 2);
}

TEST(BlockManagerTest, CachedUnderFindsTheBlockHoldingAPrefixsLastToken) {
  std::unique_ptr<BlockManager> manager = NewManager(16);
  const std::vector<int32_t> tokens = RandomTokens(3 * kBlockSize);
  const std::vector<BlockId> a = Prefill(*manager, kTenantA, tokens);
  // Another chain with the same first block and a second block starting like a's.
  const std::vector<BlockId> b =
      Prefill(*manager, kTenantA, Concat(Head(tokens, 6), RandomTokens(2 * kBlockSize - 2)));
  ASSERT_EQ(b[0], a[0]);
  ASSERT_NE(b[1], a[1]);

  EXPECT_THAT(manager->CachedUnder(kTenantA, Head(tokens, 8)), ElementsAre(a[1]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, Head(tokens, 6)),
              testing::UnorderedElementsAre(a[1], b[1]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, Head(tokens, 7)), ElementsAre(a[1]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, Head(tokens, 3)), ElementsAre(a[0]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, Head(tokens, kBlockSize)), ElementsAre(a[0]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, tokens), ElementsAre(a[2]));
  EXPECT_THAT(manager->CachedUnder(kTenantA, {}), IsEmpty());
  EXPECT_THAT(manager->CachedUnder(kTenantB, Head(tokens, 6)), IsEmpty());
  // A middle block not cached: nothing after it counts, even if its tokens follow.
  const std::vector<int32_t> gap = Concat(Head(tokens, kBlockSize), RandomTokens(kBlockSize));
  EXPECT_THAT(manager->CachedUnder(kTenantA, Concat(gap, {tokens[8]})), IsEmpty());
  EXPECT_THAT(manager->CachedUnder(kTenantA, Concat(tokens, {7})), IsEmpty());
}

TEST(BlockManagerTest, RevokeTakesChildrenFirstRaisesGenerationsAndFreesTheBlocks) {
  std::unique_ptr<BlockManager> manager = NewManager(8);
  const std::vector<int32_t> tokens = RandomTokens(3 * kBlockSize);
  const std::vector<BlockId> chain = Prefill(*manager, kTenantA, tokens);
  ReleaseAll(*manager, chain);
  ASSERT_EQ(manager->counts().cached, 3);
  const uint64_t generation1 = manager->generation(chain[1]);
  const uint64_t generation2 = manager->generation(chain[2]);

  std::vector<BlockId> revoked;
  std::vector<uint64_t> generations;
  absl::StatusOr<int32_t> cached = manager->Revoke({chain[1]}, &revoked, &generations);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(*cached, 2);
  EXPECT_THAT(revoked, ElementsAre(chain[2], chain[1]));
  EXPECT_THAT(generations, ElementsAre(generation2 + 1, generation1 + 1));
  EXPECT_EQ(manager->generation(chain[1]), generation1 + 1);
  EXPECT_FALSE(manager->cached(chain[1]));
  EXPECT_FALSE(manager->cached(chain[2]));
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, tokens, 3), ElementsAre(chain[0]));
  const BlockCounts counts = manager->counts();
  EXPECT_EQ(counts.free, 7);
  EXPECT_EQ(counts.cached, 1);
  EXPECT_EQ(counts.evicted, 0);

  // The first block, a leaf now, is evictable: the whole space can be had.
  std::vector<BlockId> all;
  ASSERT_TRUE(manager->Reserve({}, 8, &all).ok());
  EXPECT_EQ(manager->counts().evicted, 1);
  // A revoked block handed out again gets a generation above the revoked one.
  EXPECT_GT(manager->generation(chain[1]), generation1 + 1);
}

// A quota-bound session of `ns`: `tokens` reserved fresh under `quota` and its full blocks
// cached, as Prefill does; the reservation's status.
absl::Status PrefillOwned(BlockManager& manager, const BlockQuota& quota,
                          const std::vector<int32_t>& tokens, std::vector<BlockId>* blocks) {
  const int32_t needed = static_cast<int32_t>(tokens.size()) / kBlockSize;
  if (absl::Status status = manager.Reserve({}, needed, blocks, nullptr, quota); !status.ok()) {
    return status;
  }
  for (int32_t i = 0; i < needed; ++i) {
    manager.Cache((*blocks)[i], quota.owner, i == 0 ? kNoBlock : (*blocks)[i - 1],
                  absl::MakeConstSpan(tokens).subspan(i * kBlockSize, kBlockSize));
  }
  return absl::OkStatus();
}

TEST(BlockManagerTest, OwnersCountTheBlocksTheyHoldUntilFree) {
  auto manager = NewManager(16);
  const BlockQuota a{.owner = kTenantA, .max_blocks = 100};
  std::vector<BlockId> blocks;
  ASSERT_TRUE(PrefillOwned(*manager, a, Tokens(0, 3), &blocks).ok());
  EXPECT_EQ(manager->OwnedBy(kTenantA), 3);
  EXPECT_EQ(manager->OwnedBy(kTenantB), 0);
  ReleaseAll(*manager, blocks);  // cached: still owned
  EXPECT_EQ(manager->OwnedBy(kTenantA), 3);
  std::vector<BlockId> filler;  // unowned pressure evicts them
  ASSERT_TRUE(manager->Reserve({}, 16, &filler).ok());
  EXPECT_EQ(manager->OwnedBy(kTenantA), 0);
}

TEST(BlockManagerTest, QuotaEvictsTheOwnersCachedBlocksNeverAnothers) {
  auto manager = NewManager(32);
  const BlockQuota a{.owner = kTenantA, .max_blocks = 4};
  const BlockQuota b{.owner = kTenantB, .max_blocks = 100};
  std::vector<BlockId> b_blocks;
  ASSERT_TRUE(PrefillOwned(*manager, b, Tokens(1000, 6), &b_blocks).ok());
  ReleaseAll(*manager, b_blocks);  // B's prefix: cached, evictable by pool pressure only

  std::vector<BlockId> first;
  ASSERT_TRUE(PrefillOwned(*manager, a, Tokens(0, 3), &first).ok());
  ReleaseAll(*manager, first);  // A's cached prefix: 3 of its 4
  std::vector<BlockId> second;
  // 3 more for A: over the cap by 2, so two of A's own cached blocks go, its chain's tail first.
  ASSERT_TRUE(PrefillOwned(*manager, a, Tokens(500, 3), &second).ok());
  EXPECT_EQ(manager->OwnedBy(kTenantA), 4);
  EXPECT_EQ(manager->Match({kTenantA}, kNoBlock, Tokens(0, 3), 3), std::vector<BlockId>{first[0]});
  // B's blocks, older in the eviction order than any of A's, are all still cached.
  EXPECT_EQ(manager->Match({kTenantB}, kNoBlock, Tokens(1000, 6), 6), b_blocks);
  EXPECT_EQ(manager->counts().evicted, 2);
}

TEST(BlockManagerTest, QuotaWithNothingOfItsOwnToEvictRefusesChangingNothing) {
  auto manager = NewManager(32);
  const BlockQuota a{.owner = kTenantA, .max_blocks = 4};
  std::vector<BlockId> held;
  ASSERT_TRUE(PrefillOwned(*manager, a, Tokens(0, 3), &held).ok());  // referenced: not evictable
  const BlockCounts before = manager->counts();
  std::vector<BlockId> more;
  EXPECT_TRUE(manager->CheckQuota(a, {}, 1).ok());
  const absl::Status refused = manager->CheckQuota(a, {}, 2);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("cap of 4"));
  EXPECT_EQ(manager->Reserve({}, 2, &more, nullptr, a).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(more, IsEmpty());
  EXPECT_EQ(manager->counts().free, before.free);
  EXPECT_EQ(manager->OwnedBy(kTenantA), 3);
  // Blocks about to be released count as gone.
  EXPECT_TRUE(manager->CheckQuota(a, {}, 2, /*releasing=*/1).ok());
  // Another owner is not bound by A's cap.
  EXPECT_TRUE(manager->Reserve({}, 10, &more, nullptr, {.owner = kTenantB, .max_blocks = 10}).ok());
}

TEST(BlockManagerTest, QuotaNeverEvictsTheBlocksAReservationMatches) {
  auto manager = NewManager(16);
  const BlockQuota a{.owner = kTenantA, .max_blocks = 3};
  std::vector<BlockId> first;
  ASSERT_TRUE(PrefillOwned(*manager, a, Tokens(0, 3), &first).ok());
  ReleaseAll(*manager, first);
  // Matching the first two and asking for one fresh block: the cap of 3 is met by evicting the
  // third (unmatched) block only.
  const std::vector<BlockId> matched = manager->Match({kTenantA}, kNoBlock, Tokens(0, 2), 2);
  ASSERT_EQ(matched.size(), 2u);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(manager->Reserve(matched, 1, &blocks, nullptr, a).ok());
  EXPECT_EQ(blocks.size(), 3u);
  EXPECT_EQ(manager->OwnedBy(kTenantA), 3);
  EXPECT_EQ(manager->refcount(first[0]), 1);
  EXPECT_EQ(manager->refcount(first[1]), 1);
  // And two fresh would need a matched one: refused.
  EXPECT_EQ(manager->CheckQuota(a, matched, 2).code(), absl::StatusCode::kResourceExhausted);
}

TEST(BlockManagerTest, RevokingAFreeBlockRaisesItsGenerationOnly) {
  std::unique_ptr<BlockManager> manager = NewManager(4);
  const BlockCounts before = manager->counts();
  std::vector<BlockId> revoked;
  std::vector<uint64_t> generations;
  absl::StatusOr<int32_t> cached = manager->Revoke({2, 2}, &revoked, &generations);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(*cached, 0);
  EXPECT_THAT(revoked, ElementsAre(2));
  EXPECT_THAT(generations, ElementsAre(1));
  EXPECT_EQ(manager->counts().free, before.free);
  std::vector<BlockId> all;
  EXPECT_TRUE(manager->Reserve({}, 4, &all).ok());
  EXPECT_EQ(manager->Reserve({}, 1, &all).code(), absl::StatusCode::kResourceExhausted);
}

TEST(BlockManagerTest, RevokeRefusesReferencedBlocksAndBadIdsChangingNothing) {
  std::unique_ptr<BlockManager> manager = NewManager(8);
  const std::vector<int32_t> tokens = RandomTokens(2 * kBlockSize);
  const std::vector<BlockId> gone = Prefill(*manager, kTenantA, tokens);
  ReleaseAll(*manager, gone);
  const std::vector<int32_t> others = RandomTokens(2 * kBlockSize);
  const std::vector<BlockId> held = Prefill(*manager, kTenantA, others);
  const BlockCounts before = manager->counts();
  const uint64_t generation = manager->generation(gone[0]);

  std::vector<BlockId> revoked;
  std::vector<uint64_t> generations;
  EXPECT_EQ(manager->Revoke({gone[0], held[1]}, &revoked, &generations).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager->Revoke({gone[0], 8}, &revoked, &generations).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(revoked, IsEmpty());
  EXPECT_THAT(generations, IsEmpty());
  EXPECT_EQ(manager->generation(gone[0]), generation);
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, tokens, 2), ElementsAre(gone[0], gone[1]));
  EXPECT_THAT(manager->Match({kTenantA}, kNoBlock, others, 2), ElementsAre(held[0], held[1]));
  const BlockCounts after = manager->counts();
  EXPECT_EQ(after.free, before.free);
  EXPECT_EQ(after.cached, before.cached);
  EXPECT_EQ(after.referenced, before.referenced);
}

// Thousands of random opens (with shared prefixes, two namespaces, partial tails) and closes,
// checked after every step against a model: the refcount of every block is the number of
// sessions holding it; a referenced block is never evicted, freed or given a new generation;
// every block is exactly one of free, referenced, cached; every cached block's parent is cached
// (leaves first); matches return exactly the blocks committed with those tokens; Reserve
// fails only when the free and evictable blocks fall short.
class BlockManagerModelTest : public testing::TestWithParam<std::string> {};

TEST_P(BlockManagerModelTest, RandomOperationsKeepEveryInvariant) {
  const uint64_t seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  constexpr int32_t kBlocks = 48;
  BlockManager manager(kBlocks, kBlockSize, *NewEvictionPolicy(GetParam(), kBlocks));

  struct Content {
    NamespaceId ns;
    BlockId parent;
    std::vector<int32_t> tokens;
  };
  std::map<BlockId, Content> committed;  // what each cached block was committed with
  std::vector<std::vector<BlockId>> sessions;
  std::vector<int32_t> refs(kBlocks, 0);
  std::vector<uint64_t> generation(kBlocks, 0);
  int64_t matched_blocks = 0, refusals = 0;

  auto random_prompt = [&] {
    // A few families of shared prefixes, each extended by a random tail.
    std::vector<int32_t> tokens = Tokens(1000 * static_cast<int32_t>(rng() % 4), 1 + rng() % 3);
    const int tail = static_cast<int>(rng() % (3 * kBlockSize));
    for (int i = 0; i < tail; ++i) tokens.push_back(static_cast<int32_t>(rng() % 3));
    return tokens;
  };

  for (int step = 0; step < 4000; ++step) {
    SCOPED_TRACE(absl::StrCat("step ", step));
    if (sessions.empty() || rng() % 3 != 0) {
      const NamespaceId ns = rng() % 2 == 0 ? kTenantA : kTenantB;
      const std::vector<int32_t> tokens = random_prompt();
      const int32_t needed = (static_cast<int32_t>(tokens.size()) + kBlockSize - 1) / kBlockSize;
      const std::vector<BlockId> matched = manager.Match({ns}, kNoBlock, tokens, needed);
      matched_blocks += static_cast<int64_t>(matched.size());
      for (size_t i = 0; i < matched.size(); ++i) {
        const Content& content = committed.at(matched[i]);
        ASSERT_EQ(content.ns, ns);
        ASSERT_EQ(content.parent, i == 0 ? kNoBlock : matched[i - 1]);
        ASSERT_EQ(content.tokens, std::vector<int32_t>(tokens.begin() + i * kBlockSize,
                                                       tokens.begin() + (i + 1) * kBlockSize));
      }
      int32_t revived = 0;
      for (BlockId block : matched) revived += refs[block] == 0 ? 1 : 0;
      const int32_t fresh = needed - static_cast<int32_t>(matched.size());
      const bool fits = fresh <= manager.Available() - revived;
      std::vector<BlockId> blocks;
      const absl::Status status = manager.Reserve(matched, fresh, &blocks);
      ASSERT_EQ(status.ok(), fits) << status;
      if (!status.ok()) {
        ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
        ++refusals;
        continue;
      }
      for (size_t i = 0; i < blocks.size(); ++i) {
        const BlockId block = blocks[i];
        if (i >= matched.size()) {
          ASSERT_EQ(refs[block], 0);
          ASSERT_GT(manager.generation(block), generation[block]);
          generation[block] = manager.generation(block);
          committed.erase(block);
        }
        ++refs[block];
      }
      // Commit the fresh full blocks in chain order, some of the time only part of them.
      const size_t commit_until = matched.size() + rng() % (fresh + 1);
      for (size_t i = matched.size(); i < std::min(commit_until, blocks.size()); ++i) {
        if ((i + 1) * kBlockSize > tokens.size()) break;
        const std::vector<int32_t> block_tokens(tokens.begin() + i * kBlockSize,
                                                tokens.begin() + (i + 1) * kBlockSize);
        const BlockId parent = i == 0 ? kNoBlock : blocks[i - 1];
        if (parent != kNoBlock && !manager.cached(parent)) break;
        if (manager.Cache(blocks[i], ns, parent, block_tokens)) {
          committed[blocks[i]] = Content{ns, parent, block_tokens};
        } else {
          break;  // a duplicate: the rest of this chain stays private
        }
      }
      sessions.push_back(std::move(blocks));
    } else {
      const size_t victim = rng() % sessions.size();
      for (BlockId block : sessions[victim]) {
        ASSERT_TRUE(manager.Release(block).ok());
        --refs[block];
      }
      sessions.erase(sessions.begin() + victim);
    }

    int32_t referenced = 0, cached = 0;
    for (BlockId block = 0; block < kBlocks; ++block) {
      ASSERT_EQ(manager.refcount(block), refs[block]) << "block " << block;
      if (refs[block] > 0) {
        ++referenced;
        ASSERT_EQ(manager.generation(block), generation[block]) << "block " << block;
        ASSERT_EQ(manager.cached(block), committed.count(block) == 1) << "block " << block;
      } else if (manager.cached(block)) {
        ++cached;
      }
      if (!manager.cached(block)) committed.erase(block);
    }
    for (const auto& [block, content] : committed) {
      ASSERT_TRUE(content.parent == kNoBlock || manager.cached(content.parent))
          << "block " << block << " outlived its parent " << content.parent;
    }
    const BlockCounts counts = manager.counts();
    ASSERT_EQ(counts.referenced, referenced);
    ASSERT_EQ(counts.cached, cached);
    ASSERT_EQ(counts.free + counts.referenced + counts.cached, kBlocks);
  }
  // The run exercised what it checks: sharing, eviction and exhaustion.
  EXPECT_GT(matched_blocks, 0);
  EXPECT_GT(manager.counts().evicted, 0);
  EXPECT_GT(refusals, 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, BlockManagerModelTest,
                         testing::Values("lru", "slru", "lfu-aging"));

}  // namespace
}  // namespace kvtier
