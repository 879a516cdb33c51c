// kvtier-ctl run as an operator runs it, against a LocalTier: stats as a table whose model row
// matches Coordinator::GetStats and as JSON equal to it; invalidation by session, prefix,
// tenant and model version, each visible to the client library (reason INVALIDATED, nothing
// cached any more); retiring a version at once or by draining; bad arguments exit 2 naming the
// flag, failed calls exit 1 naming the call, the code, the address and the reason.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "client/client.h"
#include "client/session.h"
#include "client/step.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/wire/model_spec.h"
#include "service/local/local_tier.h"
#include "tests/child_process.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// fp32 (4 bytes), 4-token blocks, two head ranges.
constexpr char kModel[] =
    "name=ctl,version=v1,layers=2,kv_heads=2,q_heads=4,head_dim=8,dtype=fp32,block_size=4,"
    "blocks=64,shards=2";
constexpr char kModelArgument[] = "--model=ctl@v1";

ChildRun RunCtl(const std::vector<std::string>& args) {
  std::vector<std::string> command = {KVTIER_CTL_BIN};
  command.insert(command.end(), args.begin(), args.end());
  return RunChild(command);
}

// The whitespace-separated cells of the output's line that starts with `first` (indented).
std::vector<std::string> Row(const std::string& output, const std::string& first) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!cells.empty() && cells[0] == first) return cells;
  }
  ADD_FAILURE() << "no row " << first << " in\n" << output;
  return {};
}

class CtlToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalTierOptions options;
    options.model = *ParseModelSpec(kModel);
    options.num_shards = 2;
    absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect({.coordinator_address = tier_->coordinator_address()});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // kvtier-ctl `args` against the tier; a test failure unless it exits `exit_code`.
  ChildRun Ctl(std::vector<std::string> args, int exit_code = 0) {
    args.push_back("--coordinator=" + tier_->coordinator_address());
    ChildRun run = RunCtl(args);
    EXPECT_EQ(run.exit_code, exit_code) << run.output << run.errors;
    return run;
  }

  std::unique_ptr<Session> Open(const std::string& tenant) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client_->OpenSession(ParseModelSpec(kModel)->id(), tenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }

  // Extends `session` by `prompt`, steps what was not cached (zero q/k/v) and ends the turn,
  // committing it; returns the tokens found cached.
  int32_t Prefill(Session& session, const std::vector<int32_t>& prompt) {
    absl::StatusOr<int32_t> cached = session.Extend(prompt);
    EXPECT_TRUE(cached.ok()) << cached.status();
    absl::StatusOr<std::unique_ptr<Step>> step = session.BeginStep();
    EXPECT_TRUE(step.ok()) << step.status();
    if (!cached.ok() || !step.ok()) return -1;
    const v1::ModelSpec& model = session.model();
    const size_t row = model.head_dim() * sizeof(float);
    std::vector<char> q((*step)->num_tokens() * model.num_q_heads() * row);
    std::vector<char> kv((*step)->num_tokens() * model.num_kv_heads() * row);
    std::vector<char> out(q.size());
    for (int layer = 0; layer < model.num_layers(); ++layer) {
      EXPECT_TRUE((*step)->Attend(layer, q, kv, kv, absl::MakeSpan(out)).ok());
    }
    EXPECT_TRUE((*step)->Finish().ok());
    EXPECT_TRUE(session.EndTurn().ok());
    return *cached;
  }

  std::unique_ptr<LocalTier> tier_;
  std::unique_ptr<Client> client_;
};

const std::vector<int32_t> kPrompt = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};

TEST_F(CtlToolTest, StatsTableMatchesTheCoordinator) {
  std::unique_ptr<Session> session = Open("acme");
  ASSERT_NE(session, nullptr);
  Prefill(*session, kPrompt);
  std::unique_ptr<Session> second = Open("acme");
  ASSERT_NE(second, nullptr);
  ASSERT_EQ(Prefill(*second, kPrompt), 8);

  const ChildRun run = Ctl({"stats"});
  const v1::GetStatsResponse stats = tier_->coordinator().GetStats();
  ASSERT_EQ(stats.models_size(), 1);
  const v1::ModelStats& model = stats.models(0);
  const std::vector<std::string> row = Row(run.output, "ctl@v1");
  ASSERT_EQ(row.size(), 12u) << run.output;
  EXPECT_EQ(row[1], "yes");
  EXPECT_EQ(row[2], "no");
  EXPECT_EQ(row[3], "2/2");
  EXPECT_EQ(row[4], std::to_string(model.sessions()));
  EXPECT_EQ(row[5], std::to_string(model.blocks_used()));
  EXPECT_EQ(row[6], std::to_string(model.blocks_free()));
  EXPECT_EQ(row[7], std::to_string(model.blocks_cached()));
  EXPECT_EQ(row[8], "40.0%");  // 8 of 20 prompt tokens
  EXPECT_EQ(model.cache().cached_tokens(), 8);
  EXPECT_EQ(Row(run.output, "live")[2], "2");
}

TEST_F(CtlToolTest, StatsJsonIsTheCoordinatorsStats) {
  std::unique_ptr<Session> session = Open("acme");
  ASSERT_NE(session, nullptr);
  Prefill(*session, kPrompt);
  const ChildRun run = Ctl({"stats", "--json"});
  v1::GetStatsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(run.output, &parsed).ok())
      << run.output;
  const v1::GetStatsResponse stats = tier_->coordinator().GetStats();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, stats))
      << parsed.DebugString() << "\nvs\n" << stats.DebugString();
  EXPECT_THAT(run.output, HasSubstr("\"blocks_used\""));
}

TEST_F(CtlToolTest, InvalidateSessionFailsItWithReasonInvalidated) {
  std::unique_ptr<Session> session = Open("acme");
  ASSERT_NE(session, nullptr);
  const ChildRun run = Ctl({"invalidate", "--session=" + session->id(), "--tenant=acme"});
  EXPECT_THAT(run.output, HasSubstr("invalidated session " + session->id()));
  EXPECT_EQ(Row(run.output, "sessions")[2], "1");
  EXPECT_EQ(Row(run.output, "shards")[2], "2") << "both shards acknowledged";

  const absl::StatusOr<int32_t> extended = session->Extend(kPrompt);
  EXPECT_TRUE(IsInvalidated(extended.status())) << extended.status();

  const ChildRun again =
      Ctl({"invalidate", "--session=" + session->id(), "--tenant=acme"}, /*exit_code=*/1);
  EXPECT_THAT(again.errors, HasSubstr("InvalidateSession to " + tier_->coordinator_address() +
                                      ": FAILED_PRECONDITION: session " + session->id()));
  EXPECT_THAT(again.errors, HasSubstr("(reason INVALIDATED)"));
}

TEST_F(CtlToolTest, InvalidatePrefixLeavesNothingCached) {
  std::unique_ptr<Session> writer = Open("acme");
  ASSERT_NE(writer, nullptr);
  Prefill(*writer, kPrompt);
  const ChildRun run = Ctl({"invalidate", "--prefix=5,6,7", kModelArgument, "--tenant=acme"});
  EXPECT_THAT(run.output, HasSubstr("invalidated a prefix of 3 tokens of tenant acme in ctl@v1"));
  EXPECT_EQ(Row(run.output, "sessions")[2], "1");
  EXPECT_NE(Row(run.output, "cached")[3], "0") << "the prompt's full blocks were cached";

  std::unique_ptr<Session> reader = Open("acme");
  ASSERT_NE(reader, nullptr);
  const absl::StatusOr<int32_t> cached = reader->Extend(kPrompt);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(*cached, 0);
}

TEST_F(CtlToolTest, InvalidateTenantAndModel) {
  std::unique_ptr<Session> acme = Open("acme");
  std::unique_ptr<Session> other = Open("other");
  ASSERT_TRUE(acme != nullptr && other != nullptr);
  const ChildRun tenant = Ctl({"invalidate", "--tenant=acme", "--json"});
  v1::InvalidateTenantResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(tenant.output, &response).ok())
      << tenant.output;
  EXPECT_EQ(response.result().sessions(), 1);
  EXPECT_TRUE(IsInvalidated(acme->Extend(kPrompt).status()));
  EXPECT_TRUE(other->Extend(kPrompt).ok());

  const ChildRun model = Ctl({"invalidate", kModelArgument});
  EXPECT_THAT(model.output, HasSubstr("invalidated all K/V of ctl@v1 (it stays registered)"));
  EXPECT_EQ(Row(model.output, "sessions")[2], "1");
  EXPECT_TRUE(IsInvalidated(other->Extend(kPrompt).status()));
  const v1::TierCounters tier = tier_->coordinator().GetStats().tier();
  EXPECT_EQ(tier.tenant_invalidations(), 1);
  EXPECT_EQ(tier.model_invalidations(), 1);
  EXPECT_EQ(tier.sessions_invalidated(), 2);
}

TEST_F(CtlToolTest, RetireImmediatelyRemovesTheVersion) {
  v1::ModelSpec v2 = *ParseModelSpec(kModel);
  v2.mutable_id()->set_version("v2");
  ASSERT_TRUE(client_->RegisterModel(v2).ok());
  std::unique_ptr<Session> session = Open("acme");
  ASSERT_NE(session, nullptr);
  const ChildRun run = Ctl({"retire", kModelArgument, "--mode=immediate"});
  EXPECT_THAT(run.output, HasSubstr("retired ctl@v1 immediately"));
  EXPECT_EQ(Row(run.output, "sessions")[2], "1");

  const ChildRun stats = Ctl({"stats"});
  EXPECT_THAT(stats.output, Not(HasSubstr("ctl@v1")));
  EXPECT_THAT(stats.output, HasSubstr("ctl@v2"));
  EXPECT_EQ(tier_->coordinator().GetStats().models_size(), 1);
}

TEST_F(CtlToolTest, RetireByDrainingWaitsForActiveSessions) {
  std::unique_ptr<Session> session = Open("acme");
  ASSERT_NE(session, nullptr);
  const ChildRun run = Ctl({"retire", kModelArgument, "--mode=drain"});
  EXPECT_THAT(run.output, HasSubstr("retiring ctl@v1 by draining: gone once its 1 active"));
  EXPECT_EQ(Row(run.output, "draining")[2], "1");
  EXPECT_EQ(Row(Ctl({"stats"}).output, "ctl@v1")[2], "yes") << "DRAINING";
}

TEST(CtlToolArgumentsTest, BadArgumentsExit2NamingTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } kCases[] = {
      {{}, "expected a command: stats, invalidate or retire"},
      {{"restart"}, "unknown command \"restart\""},
      {{"invalidate", "--session=s", "--tenant=t", "--prefix=1"}, "--session and --prefix"},
      {{"invalidate", "--tenant=t", "--model=m@"}, "two scopes, --tenant (tenant-wide) and --model"},
      {{"retire", "--model=llama", "--mode=drain"}, "--model: expected name@version"},
      {{"invalidate", "--prefix=1,two", "--model=m@", "--tenant=t"}, "--prefix: expected token"},
      {{"retire", "--model=m@"}, "--mode: expected immediate or drain"},
      {{"stats", "--deadline=0s"}, "--deadline: expected > 0"},
  };
  for (const auto& c : kCases) {
    const ChildRun run = RunCtl(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.message << "\n" << run.errors;
    EXPECT_THAT(run.errors, HasSubstr(c.message));
    EXPECT_EQ(run.output, "");
  }
}

TEST(CtlToolArgumentsTest, HelpListsCommandsAndFlags) {
  const ChildRun run = RunCtl({"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.errors;
  for (const char* text : {"stats", "invalidate", "retire", "Examples:", "--prefix_file",
                           "--coordinator", "--deadline", "--mode"}) {
    EXPECT_THAT(run.output, HasSubstr(text));
  }
}

TEST(CtlToolArgumentsTest, UnreachableCoordinatorExits1) {
  const ChildRun run = RunCtl({"stats", "--coordinator=127.0.0.1:1", "--deadline=3s"});
  EXPECT_EQ(run.exit_code, 1) << run.output << run.errors;
  EXPECT_THAT(run.errors, HasSubstr("GetStats to 127.0.0.1:1: UNAVAILABLE"));
}

}  // namespace
}  // namespace kvtier::test
