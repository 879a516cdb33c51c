#include "tests/client/load/load_tool.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "proto/wire/model_spec.h"

namespace kvtier::test {

ChildRun RunLoadTool(const std::vector<std::string>& flags) {
  std::vector<std::string> command = {KVTIER_LOAD_BIN};
  command.insert(command.end(), flags.begin(), flags.end());
  return RunChild(command);
}

google::protobuf::Struct ReadJson(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  google::protobuf::Struct root;
  const auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &root);
  EXPECT_TRUE(parsed.ok()) << path << ": " << parsed << "\n" << text.str().substr(0, 400);
  return root;
}

const google::protobuf::Value& Field(const google::protobuf::Struct& root,
                                     const std::string& path) {
  static const google::protobuf::Value* const kMissing = new google::protobuf::Value();
  const google::protobuf::Struct* at = &root;
  const std::vector<std::string> keys = absl::StrSplit(path, '.');
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto found = at->fields().find(keys[i]);
    if (found == at->fields().end()) {
      ADD_FAILURE() << "the JSON report has no " << path;
      return *kMissing;
    }
    if (i + 1 == keys.size()) return found->second;
    at = &found->second.struct_value();
  }
  return *kMissing;
}

double Number(const google::protobuf::Struct& root, const std::string& path) {
  const google::protobuf::Value& value = Field(root, path);
  EXPECT_TRUE(value.has_number_value()) << path << " is not a number";
  return value.number_value();
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/kvtier-load-" + std::to_string(getpid()) +
         "-" + name;
}

v1::ModelSpec LoadTestModel() {
  return *ParseModelSpec(
      "name=load,layers=4,q_heads=8,kv_heads=2,head_dim=64,dtype=bf16,block_size=16,"
      "blocks=2048,shards=2");
}

void LoadToolTest::SetUp() {
  LocalTierOptions options;
  options.model = LoadTestModel();
  options.num_shards = 2;
  absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
  ASSERT_TRUE(tier.ok()) << tier.status();
  tier_ = *std::move(tier);
}

}  // namespace kvtier::test
