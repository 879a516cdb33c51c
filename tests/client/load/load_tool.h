// Test support for kvtier-load's own tests: the binary run as a child process, as a user runs
// it (and other binaries: chromium), its exit status and output; its JSON report parsed
// (google.protobuf.Struct), with its fields read by dotted path; and the LocalTier a run loads (a
// bf16 model, 2 shards).
#ifndef KVTIER_TESTS_CLIENT_LOAD_LOAD_TOOL_H_
#define KVTIER_TESTS_CLIENT_LOAD_LOAD_TOOL_H_

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "kvtier/v1/common.pb.h"
#include "service/local/local_tier.h"
#include "tests/child_process.h"

namespace kvtier::test {

// kvtier-load with `flags`.
ChildRun RunLoadTool(const std::vector<std::string>& flags);

// The JSON at `path`, parsed; a test failure when it is not JSON.
google::protobuf::Struct ReadJson(const std::string& path);
// The value at a dotted path ("summary.latency_ms.token.p50"); a test failure (and null) when
// it is missing.
const google::protobuf::Value& Field(const google::protobuf::Struct& root, const std::string& path);
double Number(const google::protobuf::Struct& root, const std::string& path);

// A fresh path in the test's temporary directory.
std::string TempPath(const std::string& name);

// The model the tool's tests load: 4 layers, 8/2 heads, head_dim 64, bf16, 16-token blocks.
v1::ModelSpec LoadTestModel();

class LoadToolTest : public ::testing::Test {
 protected:
  void SetUp() override;
  std::string coordinator_flag() const { return "--coordinator=" + tier_->coordinator_address(); }

  std::unique_ptr<LocalTier> tier_;
};

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_CLIENT_LOAD_LOAD_TOOL_H_
