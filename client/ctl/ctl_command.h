// kvtier-ctl's command line as a request: the first positional argument names the command
// (stats, invalidate, retire) and the flags fill its request, each checked with the flag named
// in the error ("--model: expected name@version, got \"toy\""). An invalidation takes exactly
// one scope: --session (with --tenant), --prefix or --prefix_file (with --model and --tenant),
// --tenant alone, or --model alone. Pure functions, but for reading --prefix_file.
#ifndef KVTIER_CLIENT_CTL_CTL_COMMAND_H_
#define KVTIER_CLIENT_CTL_CTL_COMMAND_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kvtier/v1/admin.pb.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/session.pb.h"

namespace kvtier {

// The flags that name what a command acts on; empty: not given.
struct CtlFlags {
  std::string session{};
  std::string tenant{};
  std::string prefix{};       // token ids, comma-separated
  std::string prefix_file{};  // a file of token ids, separated by commas or whitespace
  std::string model{};        // name@version
  std::string mode{};         // immediate | drain
};

// A command is the request it sends.
using CtlCommand =
    std::variant<v1::GetStatsRequest, v1::InvalidateSessionRequest, v1::InvalidatePrefixRequest,
                 v1::InvalidateTenantRequest, v1::InvalidateModelRequest, v1::RetireModelRequest>;

// The command named by `args` (the positional arguments, the program first) with `flags`;
// INVALID_ARGUMENT naming the argument or flag otherwise.
absl::StatusOr<CtlCommand> ParseCtlCommand(const std::vector<std::string>& args,
                                           const CtlFlags& flags);

// "name@version" (the version may be empty: "name@"), validated; `flag` names it in errors.
absl::StatusOr<v1::ModelId> ParseModelArgument(absl::string_view flag, absl::string_view text);

// How --model takes `id`: "name@version", "name@" for the empty version.
std::string ModelArgument(const v1::ModelId& id);

// Token ids >= 0 separated by commas and/or whitespace, at least one.
absl::StatusOr<std::vector<int32_t>> ParseTokenList(absl::string_view flag,
                                                    absl::string_view text);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CTL_CTL_COMMAND_H_
