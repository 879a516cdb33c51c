// PrefixKvConversation: a conversation driven through a real tier as a front-end would, whose
// K/V depend on its tokens' prefixes only, as in a real model: the K and V of position p at
// layer l are pseudo-random values seeded by a hash of tokens [0, p] and l. So conversations
// that share a prefix share its K/V, whether they computed it or matched it in the tier, and
// each step's attention can be checked against dense attention over the whole history.
// Queries are fresh random values.
//
// Not thread-safe: one test thread.
#ifndef KVTIER_TESTS_SERVICE_PREFIX_KV_CONVERSATION_H_
#define KVTIER_TESTS_SERVICE_PREFIX_KV_CONVERSATION_H_

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "client/session.h"

namespace kvtier::test {

class PrefixKvConversation {
 public:
  // `history`: the tokens the session already holds (a resumed session).
  explicit PrefixKvConversation(std::unique_ptr<Session> session,
                                std::vector<int32_t> history = {});

  // Adds `tokens` (Session::Extend) and steps the ones the tier did not hold, comparing every
  // layer's output with dense attention over the whole history when `check` (a wrong number
  // is a test failure). Returns the tier's status and, in *cached, how many of `tokens` were
  // cached.
  absl::Status Say(const std::vector<int32_t>& tokens, std::mt19937_64& rng,
                   int32_t* cached = nullptr, bool check = true);

  Session& session() { return *session_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::unique_ptr<Session> session_;
  std::vector<int32_t> tokens_;
};

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVICE_PREFIX_KV_CONVERSATION_H_
