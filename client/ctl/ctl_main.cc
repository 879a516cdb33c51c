// kvtier-ctl: the operator's command line for a tier's coordinator (AdminService and
// SessionService): its stats, invalidation by session, prefix, tenant or model version, and
// retiring a model version. ctl_command.h parses the command, coordinator_calls.h sends it,
// ctl_output.h prints the answer.
//
// Exit status: 0 done, 1 the call failed (the coordinator unreachable, or it refused), 2 bad
// arguments. (A flag Abseil does not know exits 1 before any of this runs.)
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/ctl/coordinator_calls.h"
#include "client/ctl/ctl_command.h"
#include "client/ctl/ctl_output.h"
#include "proto/wire/command_line.h"
#include "proto/wire/security_flags.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "the tier's coordinator, host:port");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(10), "the deadline of the call, > 0");
ABSL_FLAG(bool, json, false, "print the response message as JSON (proto field names)");
ABSL_FLAG(std::string, session, "", "invalidate: the session id (with --tenant)");
ABSL_FLAG(std::string, tenant, "",
          "invalidate: the session's or prefix's tenant; alone: the tenant to invalidate");
ABSL_FLAG(std::string, prefix, "",
          "invalidate: a token prefix, comma-separated ids (with --model and --tenant)");
ABSL_FLAG(std::string, prefix_file, "",
          "invalidate: a file of the prefix's token ids, separated by commas or whitespace");
ABSL_FLAG(std::string, model, "",
          "the model version, name@version (name@ for the empty version); alone with "
          "invalidate: all its K/V");
ABSL_FLAG(std::string, mode, "", "retire: immediate or drain");

namespace kvtier {
namespace {

constexpr int kCallFailed = 1;
constexpr int kBadArguments = 2;

constexpr char kUsage[] = R"(operates a kvtier tier's coordinator.

Usage: kvtier-ctl COMMAND [flags]

Commands:
  stats        the models (readiness, shards, sessions, blocks, hit rate, forks,
               invalidations) and the tier's counters
  invalidate   exactly one scope:
                 --session=ID --tenant=T                  one session
                 --prefix=1,2,3 --model=M@V --tenant=T    a token prefix (or --prefix_file)
                 --tenant=T                               everything of a tenant
                 --model=M@V                              all K/V of a model version
  retire       --model=M@V --mode=immediate|drain: retire a model version

Examples:
  kvtier-ctl stats --coordinator=127.0.0.1:50051
  kvtier-ctl stats --json
  kvtier-ctl invalidate --session=3f9c0a1e --tenant=acme
  kvtier-ctl invalidate --prefix_file=doc.tokens --model=llama@v2 --tenant=acme
  kvtier-ctl retire --model=llama@v1 --mode=drain

Exit status: 0 done, 1 the call failed, 2 bad arguments.)";

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "kvtier-ctl: %s\n", FailureText(status).c_str());
  if (code == kBadArguments) std::fprintf(stderr, "kvtier-ctl: see kvtier-ctl --help\n");
  return code;
}

CtlFlags FlagsGiven() {
  CtlFlags flags;
  flags.session = absl::GetFlag(FLAGS_session);
  flags.tenant = absl::GetFlag(FLAGS_tenant);
  flags.prefix = absl::GetFlag(FLAGS_prefix);
  flags.prefix_file = absl::GetFlag(FLAGS_prefix_file);
  flags.model = absl::GetFlag(FLAGS_model);
  flags.mode = absl::GetFlag(FLAGS_mode);
  return flags;
}

int Main(const std::vector<std::string>& args) {
  const absl::StatusOr<CtlCommand> command = ParseCtlCommand(args, FlagsGiven());
  if (!command.ok()) return Fail(kBadArguments, command.status());
  const absl::Duration deadline = absl::GetFlag(FLAGS_deadline);
  if (deadline <= absl::ZeroDuration()) {
    return Fail(kBadArguments,
                absl::InvalidArgumentError(absl::StrCat("--deadline: expected > 0, got ",
                                                        absl::FormatDuration(deadline))));
  }
  absl::StatusOr<ChannelSecurity> security = ChannelSecurityFromFlags();
  if (!security.ok()) return Fail(kBadArguments, security.status());
  CoordinatorCalls calls(absl::GetFlag(FLAGS_coordinator), deadline, *security);
  const bool json = absl::GetFlag(FLAGS_json);
  const absl::StatusOr<std::string> text = std::visit(
      [&](const auto& request) -> absl::StatusOr<std::string> {
        const auto response = calls.Call(request);
        if (!response.ok()) return response.status();
        if (json) return MessageJson(*response);
        return ResultText(request, *response);
      },
      *command);
  if (!text.ok()) return Fail(kCallFailed, text.status());
  std::fputs(text->c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  const std::vector<char*> positional = kvtier::ParseCommandLine(argc, argv, kvtier::kUsage);
  return kvtier::Main(std::vector<std::string>(positional.begin(), positional.end()));
}
