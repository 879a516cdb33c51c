// The lifecycle log's lines: "<UTC time to the microsecond> <program>: <message>\n", handed
// whole to the sink, one at a time, from any number of threads.
#include "proto/wire/log.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::MatchesRegex;
using ::testing::SizeIs;

constexpr char kTime[] = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z";

class LogTest : public ::testing::Test {
 protected:
  LogTest() {
    SetLogSink([this](absl::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogTest() override {
    SetLogSink(nullptr);
    SetLogProgramName("kvtier");
  }

  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LogTest, ALineIsTheTimeTheProgramAndTheMessage) {
  SetLogProgramName("/opt/kvtier/bin/kvtier-shard");
  Log("shard serving on 127.0.0.1:50061");
  ASSERT_THAT(lines(), SizeIs(1));
  EXPECT_THAT(lines()[0], MatchesRegex(absl::StrCat(
                              kTime, " kvtier-shard: shard serving on 127.0.0.1:50061\n")));
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
  const std::vector<std::string> logged = lines();
  ASSERT_THAT(logged, SizeIs(kThreads * kLines));
  for (const std::string& line : logged) {
    EXPECT_THAT(
        line, MatchesRegex(absl::StrCat(kTime, " kvtier-coordinator: thread [0-9] line [0-9]+\n")));
  }
}

}  // namespace
}  // namespace kvtier
