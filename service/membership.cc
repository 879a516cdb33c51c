#include "service/membership.h"

namespace kvtier {

ShardMember* Membership::Add(const std::string& address, int64_t capacity_bytes, absl::Time now) {
  const uint64_t id = next_id_++;
  ShardMember& member = members_[id];
  member.id = id;
  member.address = address;
  member.capacity_bytes = capacity_bytes;
  member.last_heard = now;
  return &member;
}

ShardMember* Membership::Find(uint64_t id) {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

ShardMember* Membership::FindByAddress(const std::string& address) {
  for (auto& [id, member] : members_) {
    if (member.address == address) return &member;
  }
  return nullptr;
}

void Membership::Remove(uint64_t id) { members_.erase(id); }

std::vector<uint64_t> Membership::SilentSince(absl::Time deadline) const {
  std::vector<uint64_t> silent;
  for (const auto& [id, member] : members_) {
    if (member.last_heard < deadline) silent.push_back(id);
  }
  return silent;
}

std::vector<ShardMember*> Membership::All() {
  std::vector<ShardMember*> all;
  all.reserve(members_.size());
  for (auto& [id, member] : members_) all.push_back(&member);
  return all;
}

}  // namespace kvtier
