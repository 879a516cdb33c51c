// The Coordinator's ForkSession (coordinator.h): the fork shares its source's full blocks and
// gets a fresh block for the partial tail, which every shard copies before the fork is handed
// out. Until then the fork holds a second reference on the source's tail block, so the source
// closing or being evicted cannot free it mid-copy.
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "service/coordinator.h"

namespace kvtier {

void Coordinator::ForkSession(const v1::ForkSessionRequest& request,
                              Callback<v1::ForkSessionResponse> done) {
  // What the copy needs to finish the fork: its id, and the source's tail block it holds.
  struct Pending {
    std::string fork_id;
    uint64_t model_serial = 0;
    BlockId held_tail = kNoBlock;
    std::vector<ShardCall> calls;
  };
  absl::StatusOr<Pending> pending = [&]() -> absl::StatusOr<Pending> {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SessionRecord*> found = FindSession(request.session_id(), request.tenant());
    if (!found.ok()) return found.status();
    const SessionRecord& source = **found;
    ModelState& model = *source.model;
    if (absl::Status status = CheckNotDraining(model); !status.ok()) return status;
    const int32_t block_size = model.spec.block_size();
    const int32_t full = source.context_len() / block_size;
    const int32_t tail = source.context_len() % block_size;
    absl::StatusOr<std::vector<SessionRecord*>> evict =
        RetainedToEvict(source, {}, tail > 0 ? 1 : 0, 0);
    if (!evict.ok()) return evict.status();

    // Nothing can fail from here on: apply.
    EvictRetained(model, *evict);
    SessionRecord* fork = sessions_.Fork(source, options_.clock() + options_.session_idle_timeout);
    const absl::Span<const BlockId> shared = absl::MakeConstSpan(source.blocks).subspan(0, full);
    // NOTE: the source holds these blocks (and its tail), so sharing them cannot fail.
    model.blocks.Share(shared).IgnoreError();
    fork->blocks.assign(shared.begin(), shared.end());
    Pending pending{
        .fork_id = fork->id, .model_serial = model.serial, .held_tail = kNoBlock, .calls = {}};
    if (tail > 0) {
      std::vector<NamespaceId> evicted;
      if (absl::Status status =
              model.blocks.Reserve({}, 1, &fork->blocks, &evicted, QuotaOf(source));
          !status.ok()) {
        sessions_.Close(fork);
        return absl::InternalError(
            absl::StrCat("ForkSession: a block counted free was not: ", status.message()));
      }
      model.CountEvicted(evicted);
      pending.held_tail = source.blocks[full];
      model.blocks.Share({pending.held_tail}).IgnoreError();
      v1::CopyBlocksRequest copy;
      *copy.mutable_model() = model.spec.id();
      v1::BlockCopy* block = copy.add_copies();
      block->set_source(pending.held_tail);
      block->set_source_generation(model.blocks.generation(pending.held_tail));
      block->set_target(fork->blocks.back());
      block->set_num_tokens(tail);
      pending.calls = ToEverySlot(model, std::move(copy));
    }
    ++in_flight_;
    return pending;
  }();
  if (!pending.ok()) return done(pending.status());

  std::vector<ShardCall> calls = std::move(pending->calls);
  FanOut(*shard_control_, std::move(calls),
         [this, pending = *std::move(pending), tenant = request.tenant(), done = std::move(done)](
             const std::vector<ShardCall>& calls, const std::vector<absl::Status>& statuses) {
           using Answer = absl::StatusOr<v1::ForkSessionResponse>;
           Answer answer = [&]() -> Answer {
             absl::MutexLock lock(&mu_);
             --in_flight_;
             if (ModelState* model = models_.FindSerial(pending.model_serial);
                 model != nullptr && pending.held_tail != kNoBlock) {
               model->ReleaseBlocks({pending.held_tail});
             }
             // A shard refusing the copy because the source was invalidated mid-copy answered;
             // one that did not answer is dropped, whatever the others said.
             absl::Status refused;
             std::vector<absl::Status> unanswered = statuses;
             for (absl::Status& status : unanswered) {
               if (ReasonOf(status) != v1::ERROR_REASON_INVALIDATED) continue;
               refused = std::exchange(status, absl::OkStatus());
             }
             DropFailed(calls, unanswered, "a fork's block copy");
             absl::StatusOr<SessionRecord*> fork = sessions_.Lookup(pending.fork_id, tenant);
             if (!refused.ok()) {
               if (fork.ok()) sessions_.Close(*fork);
               return Prefixed("copying the source's tail block: ", refused);
             }
             fork = sessions_.Find(pending.fork_id, tenant);
             if (!fork.ok()) return fork.status();
             // Counted once handed out: a fork refused or lost mid-copy is none.
             Bump(*(*fork)->model, tenant, &v1::CacheCounters::forks, &v1::CacheCounters::set_forks,
                  1);
             tier_.set_forks(tier_.forks() + 1);
             v1::ForkSessionResponse response;
             *response.mutable_session() = DescribeSession(**fork);
             *response.mutable_grant() = GrantWriter(**fork);
             return response;
           }();
           done(std::move(answer));
         });
}

}  // namespace kvtier
