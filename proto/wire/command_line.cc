#include "proto/wire/command_line.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "proto/wire/log.h"

ABSL_DECLARE_FLAG(std::string, log_format);  // log_flags.cc

namespace kvtier {
namespace {

// The files that define a binary's flags: its main file (servers and tools) or benchmark, and
// the flags several binaries share (*_flags.cc: security, quotas, the log).
bool IsMainFile(absl::string_view path) {
  return absl::EndsWith(path, "_main.cc") || absl::EndsWith(path, "_bench.cc") ||
         absl::EndsWith(path, "_flags.cc");
}

// "shard/shard_main.cc" for a file of this source tree, wherever it was built; other files as
// Abseil names them (without leading slashes).
std::string SourceTreePath(absl::string_view path) {
  if (!absl::ConsumePrefix(&path, KVTIER_SOURCE_DIR)) {
    path.remove_prefix(std::min(path.find_first_not_of('/'), path.size()));
  }
  return std::string(path);
}

}  // namespace

std::vector<char*> ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  // NOTE: Debian builds Abseil without NDEBUG, which turns on absl::Mutex's deadlock detection:
  // every lock is entered in a graph kept under one global lock. Tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  SetLogProgramName(argv[0]);
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = IsMainFile;
  config.contains_help_flags = IsMainFile;
  config.normalize_filename = SourceTreePath;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  // NOTE: absl::ParseCommandLine of Abseil 20220623 exits 1 after printing the help it was
  // asked for; later Abseil exits 0, as here.
  std::vector<char*> positional = absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  if (absl::flags_internal::HandleUsageFlags(std::cout, absl::ProgramUsageMessage()) != -1) {
    std::exit(EXIT_SUCCESS);
  }
  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (log_format != "text" && log_format != "json") {
    std::cerr << "--log_format: expected text or json, got \"" << log_format << "\"\n";
    std::exit(2);
  }
  SetLogFormat(log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  return positional;
}

}  // namespace kvtier
