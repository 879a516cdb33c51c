#include "proto/wire/command_line.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

namespace kvtier {
namespace {

// The files that define a binary's flags: its main file (servers and tools) or benchmark.
bool IsMainFile(absl::string_view path) {
  return absl::EndsWith(path, "_main.cc") || absl::EndsWith(path, "_bench.cc");
}

}  // namespace

std::vector<char*> ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = IsMainFile;
  config.contains_help_flags = IsMainFile;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace kvtier
