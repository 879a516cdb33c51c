#include "cache/blocks/eviction_policy.h"

#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

// The candidates ordered by a per-block priority (lowest evicted first, ties by block id);
// what LRU and LFU-DA share. A subclass says what a use does to a block's priority and what
// priority a block enters the candidates with.
class OrderedPolicy : public EvictionPolicy {
 public:
  explicit OrderedPolicy(int32_t num_blocks) : priority_(num_blocks, 0), candidate_(num_blocks) {}

  void AddCandidate(BlockId block) override {
    priority_[block] = EntryPriority(block);
    candidate_[block] = true;
    order_.insert({priority_[block], block});
  }

  void RemoveCandidate(BlockId block) override {
    if (!candidate_[block]) return;
    order_.erase({priority_[block], block});
    candidate_[block] = false;
  }

  BlockId PopVictim() override {
    const auto [priority, block] = *order_.begin();
    order_.erase(order_.begin());
    candidate_[block] = false;
    Evicted(priority);
    return block;
  }

  void Touch(BlockId block) override {
    const bool candidate = candidate_[block];
    if (candidate) RemoveCandidate(block);
    Used(block);
    if (candidate) AddCandidate(block);
  }

 protected:
  virtual void Used(BlockId block) = 0;
  virtual uint64_t EntryPriority(BlockId block) const = 0;
  virtual void Evicted(uint64_t priority) {}

 private:
  std::vector<uint64_t> priority_;  // of candidates: their place in order_
  std::vector<bool> candidate_;
  absl::btree_set<std::pair<uint64_t, BlockId>> order_;
};

class LruPolicy final : public OrderedPolicy {
 public:
  explicit LruPolicy(int32_t num_blocks) : OrderedPolicy(num_blocks), last_use_(num_blocks, 0) {}

  absl::string_view name() const override { return "lru"; }
  void Forget(BlockId block) override { last_use_[block] = 0; }

 private:
  void Used(BlockId block) override { last_use_[block] = ++clock_; }
  uint64_t EntryPriority(BlockId block) const override { return last_use_[block]; }

  uint64_t clock_ = 0;
  std::vector<uint64_t> last_use_;
};

class LfuAgingPolicy final : public OrderedPolicy {
 public:
  explicit LfuAgingPolicy(int32_t num_blocks) : OrderedPolicy(num_blocks), uses_(num_blocks, 0) {}

  absl::string_view name() const override { return "lfu-aging"; }
  void Forget(BlockId block) override { uses_[block] = 0; }

 private:
  void Used(BlockId block) override { ++uses_[block]; }
  uint64_t EntryPriority(BlockId block) const override { return age_ + uses_[block]; }
  void Evicted(uint64_t priority) override { age_ = priority; }

  uint64_t age_ = 0;  // the last victim's priority
  std::vector<uint64_t> uses_;
};

// Segmented LRU (eviction_policy.h): probation for blocks used once, protection for blocks used
// again, within kProtectedShare of the candidates.
class SegmentedLruPolicy final : public EvictionPolicy {
 public:
  explicit SegmentedLruPolicy(int32_t num_blocks)
      : last_use_(num_blocks, 0), uses_(num_blocks, 0), candidate_(num_blocks) {}

  absl::string_view name() const override { return "slru"; }

  void Touch(BlockId block) override {
    const bool candidate = candidate_[block];
    if (candidate) RemoveCandidate(block);
    last_use_[block] = ++clock_;
    ++uses_[block];
    if (candidate) AddCandidate(block);
  }
  void AddCandidate(BlockId block) override {
    candidate_[block] = true;
    SegmentOf(block).insert({last_use_[block], block});
  }
  void RemoveCandidate(BlockId block) override {
    if (!candidate_[block]) return;
    SegmentOf(block).erase({last_use_[block], block});
    candidate_[block] = false;
  }
  BlockId PopVictim() override {
    const bool protected_over_share =
        static_cast<double>(protected_.size()) >
        kProtectedShare * static_cast<double>(protected_.size() + probation_.size());
    auto& segment = probation_.empty() || protected_over_share ? protected_ : probation_;
    const BlockId block = segment.begin()->second;
    segment.erase(segment.begin());
    candidate_[block] = false;
    return block;
  }
  void Forget(BlockId block) override {
    last_use_[block] = 0;
    uses_[block] = 0;
  }

 private:
  static constexpr double kProtectedShare = 0.3;
  using Segment = absl::btree_set<std::pair<uint64_t, BlockId>>;
  Segment& SegmentOf(BlockId block) { return uses_[block] >= 2 ? protected_ : probation_; }

  uint64_t clock_ = 0;
  std::vector<uint64_t> last_use_;
  std::vector<uint32_t> uses_;
  std::vector<bool> candidate_;
  Segment probation_, protected_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> NewEvictionPolicy(absl::string_view name,
                                                                  int32_t num_blocks) {
  if (name == "lru") return std::make_unique<LruPolicy>(num_blocks);
  if (name == "lfu-aging") return std::make_unique<LfuAgingPolicy>(num_blocks);
  if (name == "slru") return std::make_unique<SegmentedLruPolicy>(num_blocks);
  return absl::InvalidArgumentError(
      absl::StrCat("eviction policy: expected lru, slru or lfu-aging, got \"", name, "\""));
}

}  // namespace kvtier
