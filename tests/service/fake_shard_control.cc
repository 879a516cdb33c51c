#include "tests/service/fake_shard_control.h"

#include <utility>

namespace kvtier::test {

template <typename Request>
absl::Status FakeShardControl::Record(
    const std::string& address, const Request& request, std::vector<Call<Request>>& calls,
    const absl::flat_hash_map<std::string, absl::Status>& failures) {
  absl::MutexLock lock(&mu_);
  calls.push_back(Call<Request>{address, request});
  auto it = failures.find(address);
  return it == failures.end() ? absl::OkStatus() : it->second;
}

void FakeShardControl::Revoke(const std::string& address, const v1::RevokeRequest& request,
                              Done done) {
  done(Record(address, request, revokes_, revoke_failures_));
}

void FakeShardControl::CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                                  Done done) {
  done(Record(address, request, copies_, copy_failures_));
}

namespace {

void Script(absl::flat_hash_map<std::string, absl::Status>& failures, const std::string& address,
            absl::Status status) {
  if (status.ok()) {
    failures.erase(address);
  } else {
    failures[address] = std::move(status);
  }
}

}  // namespace

void FakeShardControl::FailRevokes(const std::string& address, absl::Status status) {
  absl::MutexLock lock(&mu_);
  Script(revoke_failures_, address, std::move(status));
}

void FakeShardControl::FailCopies(const std::string& address, absl::Status status) {
  absl::MutexLock lock(&mu_);
  Script(copy_failures_, address, std::move(status));
}

std::vector<FakeShardControl::Call<v1::RevokeRequest>> FakeShardControl::revokes() const {
  absl::MutexLock lock(&mu_);
  return revokes_;
}

std::vector<FakeShardControl::Call<v1::CopyBlocksRequest>> FakeShardControl::copies() const {
  absl::MutexLock lock(&mu_);
  return copies_;
}

void FakeShardControl::ClearCalls() {
  absl::MutexLock lock(&mu_);
  revokes_.clear();
  copies_.clear();
}

}  // namespace kvtier::test
