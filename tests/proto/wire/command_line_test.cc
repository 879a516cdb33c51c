// Every binary's --help, run as a user runs it: exit status 0, the usage message and the
// binary's own flags, named by the file that defines them relative to the source tree, and no
// path of the machine that built it.
#include <sys/wait.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Usage {
  std::string main_file;  // relative to the source tree
  std::vector<std::string> flags;
};

// By binary name: what its --help must list.
const std::map<std::string, Usage>& ExpectedUsage() {
  static const auto* const usage = new std::map<std::string, Usage>{
      {"kvtier-coordinator",
       {"service/coordinator_main.cc",
        {"listen", "model", "heartbeat_interval", "heartbeat_timeout", "session_idle_timeout",
         "default_retention", "max_message_mib", "credentials_file", "token_file", "tls_cert_file",
         "tls_key_file", "tls_ca_file", "tls_require_client_cert", "tenant_quotas",
         "default_tenant_quota"}}},
      {"kvtier-shard",
       {"shard/shard_main.cc",
        {"listen", "advertise", "coordinator", "capacity_gib", "device", "threads", "step_threads",
         "inline_kv_kib", "max_streams", "max_message_mib", "credentials_file", "token_file",
         "tls_cert_file", "tls_ca_file"}}},
      {"kvtier-local",
       {"service/local/local_main.cc",
        {"shards", "host", "port", "shard_port", "model", "capacity_mib", "device",
         "threads_per_shard", "address_file", "credentials_file", "tls_cert_file",
         "tenant_quotas"}}},
      {"kvtier-generate",
       {"client/generate/generate_main.cc",
        {"coordinator", "model", "tenant", "tokens", "prompt_tokens", "layers", "q_heads",
         "kv_heads", "head_dim", "vocab", "seed", "modes", "token_file", "tls_ca_file"}}},
      {"kvtier-load",
       {"client/load/load_main.cc",
        {"coordinator", "model", "tenant", "mode", "sessions", "session_rate", "max_sessions",
         "turns", "system_tokens", "prompt_tokens", "decode_tokens", "think_ms", "duration",
         "verify", "json", "html", "token_file", "tls_ca_file"}}},
      {"kvtier_bench_attention",
       {"tests/bench/attention_bench.cc",
        {"device", "threads", "max_pool_gib", "min_seconds", "read_buffer_gib"}}},
      {"kvtier_bench_data_plane",
       {"tests/bench/data_plane_bench.cc", {"layers", "shards", "batch", "rounds"}}},
  };
  return *usage;
}

TEST(CommandLineTest, HelpExitsZeroListingTheBinarysOwnFlagsWithoutBuildPaths) {
  const std::vector<std::string> binaries = absl::StrSplit(KVTIER_BINARIES, ':');
  for (const std::string& binary : binaries) {
    SCOPED_TRACE(binary);
    const std::string name = binary.substr(binary.rfind('/') + 1);
    auto expected = ExpectedUsage().find(name);
    ASSERT_NE(expected, ExpectedUsage().end()) << "no expected usage for " << name;
    ChildProcess process({binary, "--help"});
    ASSERT_TRUE(process.started());
    const std::string help = process.RestOfOutput();
    const int status = process.Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeExit(status);

    EXPECT_TRUE(absl::StartsWith(help, name + ": ")) << help;
    EXPECT_THAT(help,
                HasSubstr(absl::StrCat("\n  Flags from ", expected->second.main_file, ":\n")));
    // The main file's flags, and those shared by several binaries (*_flags.cc) only.
    const std::vector<absl::string_view> sections = absl::StrSplit(help, "Flags from ");
    for (size_t i = 1; i < sections.size(); ++i) {
      const absl::string_view file = sections[i].substr(0, sections[i].find(':'));
      EXPECT_TRUE(file == expected->second.main_file || absl::EndsWith(file, "_flags.cc")) << file;
    }
    EXPECT_THAT(help, HasSubstr("--log_format ("));
    for (const std::string& flag : expected->second.flags) {
      EXPECT_THAT(help, HasSubstr(absl::StrCat("--", flag, " (")));
    }
    for (absl::string_view path : {KVTIER_SOURCE_DIR, KVTIER_BINARY_DIR}) {
      EXPECT_THAT(help, Not(HasSubstr(absl::StripPrefix(path, "/")))) << help;
    }
  }
}

}  // namespace
}  // namespace kvtier::test
