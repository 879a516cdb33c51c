// The lifecycle log's lines: "<UTC time to the microsecond> <program>: <message>\n" (or one
// JSON object), handed whole to the sink, one at a time, from any number of threads.
#include "proto/wire/log.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"

namespace kvtier {
namespace {

using test::kLogTimeRegex;
using test::LogCapture;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

class LogTest : public ::testing::Test {
 protected:
  ~LogTest() override { SetLogProgramName("kvtier"); }

  LogCapture log_;
};

TEST_F(LogTest, ALineIsTheTimeTheProgramAndTheMessage) {
  SetLogProgramName("/opt/kvtier/bin/kvtier-shard");
  Log("shard serving on 127.0.0.1:50061");
  ASSERT_THAT(log_.lines(), SizeIs(1));
  EXPECT_THAT(log_.lines()[0],
              MatchesRegex(absl::StrCat(kLogTimeRegex,
                                        " kvtier-shard: shard serving on 127.0.0.1:50061\n")));
}

TEST_F(LogTest, JsonLinesAreOneObjectWithTheMessageEscaped) {
  SetLogProgramName("kvtier-coordinator");
  SetLogFormat(LogFormat::kJson);
  Log("tenant \"a\\b\"\nsaid\x01");
  SetLogFormat(LogFormat::kText);
  ASSERT_THAT(log_.lines(), SizeIs(1));
  EXPECT_THAT(log_.lines()[0], MatchesRegex(absl::StrCat(
                                   "\\{\"time\":\"", kLogTimeRegex,
                                   "\",\"program\":\"kvtier-coordinator\",\"message\":\"tenant "
                                   "\\\\\"a\\\\\\\\b\\\\\"\\\\nsaid\\\\u0001\"\\}\n")));
}

TEST_F(LogTest, ConcurrentLinesArriveWhole) {
  SetLogProgramName("kvtier-coordinator");
  constexpr int kThreads = 8;
  constexpr int kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) Log(absl::StrCat("thread ", t, " line ", i));
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<std::string> logged = log_.lines();
  ASSERT_THAT(logged, SizeIs(kThreads * kLines));
  for (const std::string& line : logged) {
    EXPECT_THAT(line, MatchesRegex(absl::StrCat(
                          kLogTimeRegex, " kvtier-coordinator: thread [0-9] line [0-9]+\n")));
  }
}

}  // namespace
}  // namespace kvtier
