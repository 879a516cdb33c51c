#include "client/load/session_driver.h"

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "client/load/session_verifier.h"
#include "client/load/step_tensors.h"
#include "client/session.h"
#include "client/step.h"

namespace kvtier {

absl::Time SleepUntil(absl::Time at) {
  const absl::Time now = absl::Now();
  if (at > now) absl::SleepFor(at - now);
  return absl::Now();
}

// One conversation in flight: its session, tensors, verifier and row.
class SessionDriver::Conversation {
 public:
  Conversation(SessionDriver& driver, const ConversationPlan& plan, absl::Time intended)
      : driver_(driver),
        plan_(plan),
        rng_(plan.seed),
        query_stream_(plan.seed ^ 0x9a3f5c7e1b2d4f68ull),
        tensors_(driver.model_, driver.dtype_) {
    row_.index = plan.index;
    row_.tenant = plan.tenant;
    row_.prefix_group = plan.prefix_group;
    row_.verified = plan.verify;
    row_.start = intended - driver.recorder_.start();
    if (plan.verify) verifier_.emplace(driver.model_, driver.dtype_);
  }

  // The whole conversation; the status that ended it early, if any.
  absl::Status Run(absl::Time intended, absl::Time no_turn_after, bool* completed) {
    LoadRecorder& recorder = driver_.recorder_;
    absl::Time started = absl::Now();
    v1::ModelId model = driver_.model_.id();
    absl::StatusOr<std::unique_ptr<Session>> session =
        driver_.client_.OpenSession(model, TenantName(driver_.config_, plan_.tenant));
    if (!session.ok()) return session.status();
    session_ = *std::move(session);
    row_.session_id = session_->id();
    recorder.SessionStarted(started);
    *completed = false;
    for (size_t turn = 0; turn < plan_.turns.size(); ++turn) {
      const TurnPlan& plan = plan_.turns[turn];
      if (turn > 0) {
        intended += plan.think_before;
        if (intended >= no_turn_after) break;
        started = SleepUntil(intended);
        recorder.RecordSend(intended, started);
      }
      std::vector<int32_t> prompt;
      if (turn == 0) prompt = driver_.workload_.SharedPrompt(plan_);
      const std::vector<int32_t> own = Workload::Tokens(rng_, plan.prompt_tokens);
      prompt.insert(prompt.end(), own.begin(), own.end());
      if (absl::Status s = RunTurn(plan, prompt, intended, started); !s.ok()) return s;
      intended = last_turn_end_;
      ++row_.turns;
    }
    *completed = row_.turns == static_cast<int>(plan_.turns.size());
    return session_->Close();
  }

  // Best effort after a failure: the session goes, its error stays.
  void Abandon() {
    if (session_ != nullptr) session_->Close().IgnoreError();
  }

  SessionRow TakeRow() { return std::move(row_); }
  SessionRow& row() { return row_; }
  bool opened() const { return session_ != nullptr; }

 private:
  absl::Status RunTurn(const TurnPlan& plan, const std::vector<int32_t>& prompt,
                       absl::Time intended, absl::Time started) {
    LoadRecorder& recorder = driver_.recorder_;
    absl::StatusOr<int32_t> cached = session_->Extend(prompt);
    if (!cached.ok()) return cached.status();
    if (verifier_.has_value()) {
      verifier_->AppendCached(
          *cached, [&](int position) { return driver_.workload_.KvStream(plan_, position); });
    }
    const absl::Time prefill_start = absl::Now();
    if (absl::Status s = RunStep(); !s.ok()) return s;
    recorder.RecordStep(prefill_start, absl::Now(), layer_times_, /*decode=*/false);
    const bool measured = recorder.Measured(intended);
    for (int token = 0; token < plan.decode_tokens; ++token) {
      const absl::Time token_start = absl::Now();
      const std::vector<int32_t> next = Workload::Tokens(rng_, 1);
      if (absl::StatusOr<int32_t> extended = session_->Extend(next); !extended.ok()) {
        return extended.status();
      }
      if (absl::Status s = RunStep(); !s.ok()) return s;
      const absl::Time token_end = absl::Now();
      recorder.RecordStep(token_start, token_end, layer_times_, /*decode=*/true);
      if (recorder.Measured(token_start)) row_.token.RecordDuration(token_end - token_start);
      if (token == 0) {
        recorder.RecordFirstToken(intended, started, token_end);
        if (measured) row_.ttft.RecordDuration(token_end - intended);
      }
    }
    if (absl::Status s = session_->EndTurn(driver_.config_.retain_for); !s.ok()) return s;
    last_turn_end_ = absl::Now();
    const int prompt_tokens = static_cast<int>(prompt.size());
    recorder.RecordTurn(intended, started, last_turn_end_, prompt_tokens, *cached);
    if (measured) {
      row_.prompt_tokens += prompt_tokens;
      row_.cached_tokens += *cached;
      row_.decode_tokens += plan.decode_tokens;
    }
    return absl::OkStatus();
  }

  // One step over the session's pending tokens, every layer; layer_times_ gets each layer's
  // round trip.
  absl::Status RunStep() {
    const int rows = session_->pending_tokens();
    const int first_position = session_->context_len();
    absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
    if (!step.ok()) return step.status();
    tensors_.Resize(rows);
    layer_times_.clear();
    for (int layer = 0; layer < driver_.model_.num_layers(); ++layer) {
      for (int row = 0; row < rows; ++row) {
        const int position = first_position + row;
        tensors_.DrawRow(row, layer, position, query_stream_,
                         driver_.workload_.KvStream(plan_, position));
      }
      const absl::Time sent = absl::Now();
      absl::Status attended = (*step)->Attend(layer, tensors_.q_bytes(), tensors_.k_bytes(),
                                              tensors_.v_bytes(), tensors_.out_bytes());
      layer_times_.push_back(absl::Now() - sent);
      if (!attended.ok()) return attended;
      if (verifier_.has_value()) {
        if (absl::Status s = Verify(layer); !s.ok()) return s;
      }
    }
    if (absl::Status s = (*step)->Finish(); !s.ok()) return s;
    if (verifier_.has_value()) verifier_->EndStep(rows);
    return absl::OkStatus();
  }

  absl::Status Verify(int layer) {
    const int64_t output = ++driver_.verified_outputs_;
    if (output == driver_.corrupt_output_) tensors_.CorruptOutput(1.0f);
    absl::Status checked = verifier_->CheckLayer(layer, tensors_);
    driver_.recorder_.RecordVerified(checked.ok());
    return checked;
  }

  SessionDriver& driver_;
  const ConversationPlan& plan_;
  std::mt19937_64 rng_;  // token ids
  const uint64_t query_stream_;
  StepTensors tensors_;
  std::optional<SessionVerifier> verifier_;
  std::unique_ptr<Session> session_;
  std::vector<absl::Duration> layer_times_;  // of the last step
  absl::Time last_turn_end_;
  SessionRow row_;
};

SessionDriver::SessionDriver(const LoadConfig& config, const v1::ModelSpec& model, DType dtype,
                             const Workload& workload, Client& client, LoadRecorder& recorder,
                             int64_t corrupt_output)
    : config_(config),
      model_(model),
      dtype_(dtype),
      workload_(workload),
      client_(client),
      recorder_(recorder),
      corrupt_output_(corrupt_output) {}

void SessionDriver::Run(const ConversationPlan& plan, absl::Time intended,
                        absl::Time no_turn_after) {
  Conversation conversation(*this, plan, intended);
  bool completed = false;
  absl::Status status = conversation.Run(intended, no_turn_after, &completed);
  const absl::Time end = absl::Now();
  if (!status.ok()) {
    recorder_.RecordError(end, status);
    conversation.row().error = status.ToString();
    conversation.Abandon();
    if (!conversation.opened()) return;  // never started: no row
  }
  recorder_.SessionEnded(end, conversation.TakeRow(), completed && status.ok());
}

}  // namespace kvtier
