#include "service/shard_control.h"

#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace kvtier {

void FanOut(ShardControl& control, std::vector<ShardCall> calls,
            std::function<void(const std::vector<ShardCall>&, const std::vector<absl::Status>&)>
                done) {
  if (calls.empty()) {
    done(calls, {});
    return;
  }
  struct Batch {
    absl::Mutex mu;
    size_t remaining ABSL_GUARDED_BY(mu);
    std::vector<absl::Status> statuses ABSL_GUARDED_BY(mu);
    std::vector<ShardCall> calls;  // immutable once sending starts
    std::function<void(const std::vector<ShardCall>&, const std::vector<absl::Status>&)> done;
  };
  auto batch = std::make_shared<Batch>();
  {
    absl::MutexLock lock(&batch->mu);
    batch->remaining = calls.size();
    batch->statuses.resize(calls.size());
  }
  batch->calls = std::move(calls);
  batch->done = std::move(done);
  for (size_t i = 0; i < batch->calls.size(); ++i) {
    ShardControl::Done answered = [batch, i](absl::Status status) {
      std::vector<absl::Status> statuses;
      {
        absl::MutexLock lock(&batch->mu);
        batch->statuses[i] = std::move(status);
        if (--batch->remaining > 0) return;
        statuses = std::move(batch->statuses);  // the last answer
      }
      batch->done(batch->calls, statuses);
    };
    const ShardCall& call = batch->calls[i];
    if (const auto* revoke = std::get_if<v1::RevokeRequest>(&call.request)) {
      control.Revoke(call.address, *revoke, std::move(answered));
    } else {
      control.CopyBlocks(call.address, std::get<v1::CopyBlocksRequest>(call.request),
                         std::move(answered));
    }
  }
}

}  // namespace kvtier
