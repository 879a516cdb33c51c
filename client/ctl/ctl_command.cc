#include "client/ctl/ctl_command.h"

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proto/wire/model_spec.h"

namespace kvtier {
namespace {

// The flags of CtlFlags by name, as --help lists them.
std::vector<std::pair<absl::string_view, const std::string*>> NamedFlags(const CtlFlags& flags) {
  return {{"--session", &flags.session}, {"--tenant", &flags.tenant},
          {"--prefix", &flags.prefix},   {"--prefix_file", &flags.prefix_file},
          {"--model", &flags.model},     {"--mode", &flags.mode}};
}

// INVALID_ARGUMENT naming the first flag given that `command` does not take.
absl::Status OnlyFlags(absl::string_view command, const CtlFlags& flags,
                       std::initializer_list<absl::string_view> allowed) {
  for (const auto& [name, value] : NamedFlags(flags)) {
    if (value->empty() || std::find(allowed.begin(), allowed.end(), name) != allowed.end()) {
      continue;
    }
    const std::string takes = allowed.size() == 0 ? "none" : absl::StrJoin(allowed, ", ");
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a flag of ", command, " (takes ", takes, ")"));
  }
  return absl::OkStatus();
}

absl::Status Required(absl::string_view flag, const std::string& value, absl::string_view with) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, ": required with ", with));
}

absl::StatusOr<std::vector<int32_t>> PrefixTokens(const CtlFlags& flags) {
  if (!flags.prefix.empty()) return ParseTokenList("--prefix", flags.prefix);
  std::ifstream file(flags.prefix_file);
  std::stringstream text;
  text << file.rdbuf();
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix_file: cannot read \"", flags.prefix_file, "\""));
  }
  return ParseTokenList(absl::StrCat("--prefix_file (", flags.prefix_file, ")"), text.str());
}

absl::StatusOr<CtlCommand> InvalidatePrefix(const CtlFlags& flags) {
  const absl::string_view flag = flags.prefix.empty() ? "--prefix_file" : "--prefix";
  if (absl::Status s = Required("--model", flags.model, flag); !s.ok()) return s;
  if (absl::Status s = Required("--tenant", flags.tenant, flag); !s.ok()) return s;
  absl::StatusOr<v1::ModelId> model = ParseModelArgument("--model", flags.model);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<int32_t>> tokens = PrefixTokens(flags);
  if (!tokens.ok()) return tokens.status();
  v1::InvalidatePrefixRequest request;
  *request.mutable_model() = *std::move(model);
  request.set_tenant(flags.tenant);
  request.mutable_tokens()->Add(tokens->begin(), tokens->end());
  return request;
}

absl::StatusOr<CtlCommand> Invalidate(const CtlFlags& flags) {
  if (absl::Status s = OnlyFlags("invalidate", flags,
                                 {"--session", "--tenant", "--prefix", "--prefix_file", "--model"});
      !s.ok()) {
    return s;
  }
  const bool session = !flags.session.empty();
  const bool prefix = !flags.prefix.empty() || !flags.prefix_file.empty();
  if (!flags.prefix.empty() && !flags.prefix_file.empty()) {
    return absl::InvalidArgumentError("--prefix, --prefix_file: give one of them");
  }
  if (session && prefix) {
    return absl::InvalidArgumentError(
        "invalidate: two scopes, --session and --prefix: give exactly one");
  }
  if (session) {
    if (!flags.model.empty()) {
      return absl::InvalidArgumentError(
          "--model: not a flag of invalidate --session (the session names its model)");
    }
    if (absl::Status s = Required("--tenant", flags.tenant, "--session"); !s.ok()) return s;
    v1::InvalidateSessionRequest request;
    request.set_session_id(flags.session);
    request.set_tenant(flags.tenant);
    return request;
  }
  if (prefix) return InvalidatePrefix(flags);
  if (!flags.tenant.empty() && !flags.model.empty()) {
    return absl::InvalidArgumentError(
        "invalidate: two scopes, --tenant (tenant-wide) and --model (model-wide): give exactly "
        "one, or both with --prefix");
  }
  if (!flags.tenant.empty()) {
    v1::InvalidateTenantRequest request;
    request.set_tenant(flags.tenant);
    return request;
  }
  if (flags.model.empty()) {
    return absl::InvalidArgumentError(
        "invalidate: expected a scope: --session, --prefix (or --prefix_file), --tenant or "
        "--model");
  }
  absl::StatusOr<v1::ModelId> model = ParseModelArgument("--model", flags.model);
  if (!model.ok()) return model.status();
  v1::InvalidateModelRequest request;
  *request.mutable_model() = *std::move(model);
  return request;
}

absl::StatusOr<CtlCommand> Retire(const CtlFlags& flags) {
  if (absl::Status s = OnlyFlags("retire", flags, {"--model", "--mode"}); !s.ok()) return s;
  if (absl::Status s = Required("--model", flags.model, "retire"); !s.ok()) return s;
  absl::StatusOr<v1::ModelId> model = ParseModelArgument("--model", flags.model);
  if (!model.ok()) return model.status();
  v1::RetireModelRequest request;
  *request.mutable_model() = *std::move(model);
  if (flags.mode == "immediate") {
    request.set_mode(v1::RETIRE_MODE_IMMEDIATE);
  } else if (flags.mode == "drain") {
    request.set_mode(v1::RETIRE_MODE_DRAIN);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode: expected immediate or drain, got \"", flags.mode, "\""));
  }
  return request;
}

}  // namespace

absl::StatusOr<CtlCommand> ParseCtlCommand(const std::vector<std::string>& args,
                                           const CtlFlags& flags) {
  if (args.size() < 2) {
    return absl::InvalidArgumentError("expected a command: stats, invalidate or retire");
  }
  if (args.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", args[2], "\" after the command ", args[1]));
  }
  const std::string& command = args[1];
  if (command == "stats") {
    if (absl::Status s = OnlyFlags("stats", flags, {}); !s.ok()) return s;
    return v1::GetStatsRequest();
  }
  if (command == "invalidate") return Invalidate(flags);
  if (command == "retire") return Retire(flags);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command, "\": expected stats, invalidate or retire"));
}

absl::StatusOr<v1::ModelId> ParseModelArgument(absl::string_view flag, absl::string_view text) {
  const size_t at = text.find('@');
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": expected name@version (name@ for the empty version), got \"", text, "\""));
  }
  v1::ModelId id;
  id.set_name(std::string(text.substr(0, at)));
  id.set_version(std::string(text.substr(at + 1)));
  if (absl::Status valid = ValidateModelId(flag, id); !valid.ok()) return valid;
  return id;
}

std::string ModelArgument(const v1::ModelId& id) {
  return absl::StrCat(id.name(), "@", id.version());
}

absl::StatusOr<std::vector<int32_t>> ParseTokenList(absl::string_view flag,
                                                    absl::string_view text) {
  std::vector<int32_t> tokens;
  for (absl::string_view word : absl::StrSplit(text, absl::ByAnyChar(", \t\r\n"),
                                               absl::SkipEmpty())) {
    int32_t token = -1;
    if (!absl::SimpleAtoi(word, &token) || token < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": expected token ids >= 0 separated by commas or whitespace, got \"", word,
          "\""));
    }
    tokens.push_back(token);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": expected at least one token id"));
  }
  return tokens;
}

}  // namespace kvtier
