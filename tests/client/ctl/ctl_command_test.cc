// kvtier-ctl's command line: each command's request from its flags, --prefix_file read, model
// ids and token lists parsed, and every misuse refused with the flag or argument named.
#include "client/ctl/ctl_command.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<CtlCommand> Parse(const std::string& command, const CtlFlags& flags) {
  return ParseCtlCommand({"kvtier-ctl", command}, flags);
}

TEST(CtlCommandTest, EachScopeIsItsRequest) {
  absl::StatusOr<CtlCommand> session = Parse("invalidate", {.session = "s1", .tenant = "t"});
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(std::get<v1::InvalidateSessionRequest>(*session).session_id(), "s1");

  absl::StatusOr<CtlCommand> prefix =
      Parse("invalidate", {.tenant = "t", .prefix = "1,2, 3", .model = "m@v2"});
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  const auto& request = std::get<v1::InvalidatePrefixRequest>(*prefix);
  EXPECT_THAT(request.tokens(), ElementsAre(1, 2, 3));
  EXPECT_EQ(request.model().name(), "m");
  EXPECT_EQ(request.model().version(), "v2");

  EXPECT_TRUE(std::holds_alternative<v1::InvalidateTenantRequest>(
      *Parse("invalidate", {.tenant = "t"})));
  absl::StatusOr<CtlCommand> model = Parse("invalidate", {.model = "m@"});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(std::get<v1::InvalidateModelRequest>(*model).model().version(), "");

  absl::StatusOr<CtlCommand> retire = Parse("retire", {.model = "m@v1", .mode = "drain"});
  ASSERT_TRUE(retire.ok()) << retire.status();
  EXPECT_EQ(std::get<v1::RetireModelRequest>(*retire).mode(), v1::RETIRE_MODE_DRAIN);
}

TEST(CtlCommandTest, PrefixFileHoldsTokensSeparatedByCommasOrWhitespace) {
  const std::string path = ::testing::TempDir() + "/prefix-" + std::to_string(getpid());
  std::ofstream(path) << "7 8,\n9\t10\n";
  absl::StatusOr<CtlCommand> prefix =
      Parse("invalidate", {.tenant = "t", .prefix_file = path, .model = "m@"});
  std::remove(path.c_str());
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_THAT(std::get<v1::InvalidatePrefixRequest>(*prefix).tokens(), ElementsAre(7, 8, 9, 10));

  absl::StatusOr<CtlCommand> missing =
      Parse("invalidate", {.tenant = "t", .prefix_file = path, .model = "m@"});
  EXPECT_THAT(missing.status().message(), HasSubstr("--prefix_file: cannot read"));
}

TEST(CtlCommandTest, RefusesMisuseNamingTheFlag) {
  const struct {
    std::string command;
    CtlFlags flags;
    std::string message;
  } kCases[] = {
      {"invalidate", {}, "expected a scope"},
      {"invalidate", {.session = "s"}, "--tenant: required with --session"},
      {"invalidate", {.session = "s", .tenant = "t", .model = "m@"}, "--model: not a flag"},
      {"invalidate", {.prefix = "1", .model = "m@"}, "--tenant: required with --prefix"},
      {"invalidate", {.tenant = "t", .prefix = "1"}, "--model: required with --prefix"},
      {"invalidate", {.tenant = "t", .prefix = "1", .prefix_file = "f", .model = "m@"},
       "--prefix, --prefix_file: give one"},
      {"invalidate", {.tenant = "t", .mode = "drain"}, "--mode: not a flag of invalidate"},
      {"retire", {.model = "m@"}, "--mode: expected immediate or drain, got \"\""},
      {"retire", {.mode = "drain"}, "--model: required with retire"},
      {"retire", {.tenant = "t", .model = "m@", .mode = "drain"}, "--tenant: not a flag"},
      {"stats", {.model = "m@"}, "--model: not a flag of stats (takes none)"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<CtlCommand> parsed = Parse(c.command, c.flags);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message));
  }
  EXPECT_THAT(ParseCtlCommand({"kvtier-ctl", "stats", "extra"}, {}).status().message(),
              HasSubstr("unexpected argument \"extra\""));
}

TEST(CtlCommandTest, ModelArgumentIsNameAtVersion) {
  absl::StatusOr<v1::ModelId> id = ParseModelArgument("--model", "llama-3.1@2024-07@b");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->name(), "llama-3.1");
  EXPECT_EQ(id->version(), "2024-07@b");
  EXPECT_EQ(ModelArgument(*id), "llama-3.1@2024-07@b");
  EXPECT_THAT(ParseModelArgument("--model", "llama").status().message(),
              HasSubstr("--model: expected name@version"));
  EXPECT_THAT(ParseModelArgument("--model", "@v1").status().message(),
              HasSubstr("--model.name: expected 1..64 characters"));
  EXPECT_THAT(ParseModelArgument("--model", "a b@v1").status().message(),
              HasSubstr("--model.name: only letters"));
}

TEST(CtlCommandTest, TokenListsAreNonNegativeIds) {
  EXPECT_THAT(*ParseTokenList("--prefix", " 0,1 ,,2\n"), ElementsAre(0, 1, 2));
  EXPECT_THAT(ParseTokenList("--prefix", "1,-2").status().message(),
              HasSubstr("--prefix: expected token ids >= 0 separated by commas or whitespace, "
                        "got \"-2\""));
  EXPECT_THAT(ParseTokenList("--prefix", "1,x").status().message(), HasSubstr("got \"x\""));
  EXPECT_THAT(ParseTokenList("--prefix", "99999999999").status().message(),
              HasSubstr("got \"99999999999\""));
  EXPECT_THAT(ParseTokenList("--prefix", " , ").status().message(),
              HasSubstr("--prefix: expected at least one token id"));
}

}  // namespace
}  // namespace kvtier
