// kvtier-load: load testing of a kvtier tier, per session. It runs conversations as front-ends
// would (system prompt, turns, decode, think time, retention), sending real q/k/v for every
// layer, and reports latency per layer round trip, per token, to the first token and per turn,
// prefix hits and errors, with percentiles to p99.99, per-session and per-tenant rows and
// goodput under --slo (terminal table, --json, --html); or replays a Mooncake trace (--trace).
// The README ("kvtier-load") defines the metrics.
//
//   kvtier-local --port=50051 &
//   kvtier-load --coordinator=127.0.0.1:50051 --sessions=8 --duration=60s --html=report.html
//
// Exit status: 0 the run completed (errors of the tier are counted in the report), 1 it could
// not run (tier unreachable, no such model, a report not written), 2 bad flags, 3 --verify
// found a wrong output, 4 --fail_on_errors and the tier answered some call with an error.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/load/distribution.h"
#include "client/load/html_report.h"
#include "client/load/json_report.h"
#include "client/load/load_config.h"
#include "client/load/load_runner.h"
#include "client/load/mooncake_trace.h"
#include "client/load/progress_line.h"
#include "client/load/slo.h"
#include "client/load/terminal_report.h"
#include "client/load/test_faults.h"
#include "proto/wire/command_line.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/security_flags.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "the tier's coordinator, host:port");
ABSL_FLAG(std::string, model, "",
          "the tier's model to load (its geometry is read from the tier); empty: its only one");
ABSL_FLAG(std::string, model_version, "", "the version of --model");
ABSL_FLAG(std::string, tenant, "kvtier-load",
          "tenant the sessions are opened for, or with --tenants > 1 their names' stem (NAME-0, "
          "NAME-1, ...); the tier takes it from the request: credentials per tenant have not "
          "landed (they wait for the security issue, see README Security)");
ABSL_FLAG(int, tenants, 1,
          "conversations are spread over this many tenants (which never share blocks: prefix "
          "groups are per tenant); per-tenant rows in the reports");
ABSL_FLAG(double, tenant_skew, 0,
          "Zipf exponent of the tenants' shares: tenant k gets a share proportional to "
          "1/(k+1)^skew; 0: uniform");
ABSL_FLAG(std::string, trace, "",
          "replay this Mooncake trace (JSON lines: timestamp ms, input_length, output_length, "
          "hash_ids of 512-token blocks) in open loop: each request a one-turn session arriving at "
          "its timestamp / --speedup, its prompt built from its hash ids (equal ids, equal "
          "tokens), its reply output_length tokens; --mode, --turns and the length flags do not "
          "apply");
ABSL_FLAG(double, speedup, 1, "--trace: replay this many times faster than the timestamps");
ABSL_FLAG(int64_t, max_requests, 0,
          "--trace: replay only its first N requests (0: all; --duration also cuts it short)");
ABSL_FLAG(double, trace_length_scale, 1,
          "--trace: scale input and output lengths by this, in (0, 1] (each 512-token block "
          "becomes 512 x scale tokens, so prefixes still share), for a tier too small for them");
ABSL_FLAG(std::string, slo, "",
          "latency targets each session must meet for the goodput (the share of sessions that "
          "do), over its own samples: METRIC_QUANTILE=DURATION,... with METRIC token or ttft, "
          "QUANTILE p50, p90, p99, p99_9 or max; e.g. token_p99=20ms,ttft_p99=200ms");
ABSL_FLAG(std::string, mode, "closed",
          "closed: --sessions conversations at a time, the next starting as one ends; open: "
          "conversations arrive at --session_rate, latency counted from their arrival");
ABSL_FLAG(int, sessions, 4, "closed loop: conversations at a time");
ABSL_FLAG(double, session_rate, 10, "open loop: conversations arriving per second");
ABSL_FLAG(double, burstiness, 1,
          "open loop: coefficient of variation of the gaps between arrivals (gamma; 1: Poisson)");
ABSL_FLAG(int, max_sessions, 64, "open loop: conversations at a time, at most");
ABSL_FLAG(int, turns, 3, "turns per conversation");
ABSL_FLAG(int, system_tokens, 0,
          "a system prompt of this many tokens, shared by the conversations of a prefix group, "
          "starts each conversation");
ABSL_FLAG(int, prefix_groups, 1, "distinct system prompts (conversation i is in group i mod N)");
ABSL_FLAG(std::string, prompt_tokens, "64",
          "each turn's own prompt tokens: N, const:N, uniform:A:B, lognormal:MEDIAN:SIGMA");
ABSL_FLAG(std::string, decode_tokens, "16", "each turn's reply tokens (as --prompt_tokens)");
ABSL_FLAG(std::string, think_ms, "0",
          "think time between turns, ms: N, const:N, exp:MEAN, uniform:A:B, lognormal:...");
ABSL_FLAG(absl::Duration, retain, absl::Minutes(1), "EndTurn's retention between turns");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(),
          "run this long first without counting it in the summary");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "measure this long after the warm-up (no turn starts after); 0, closed loop only: each "
          "of --sessions runs one conversation");
ABSL_FLAG(absl::Duration, slice, absl::Seconds(1), "the time series' step");
ABSL_FLAG(double, verify, 0,
          "this fraction of the conversations has every output checked against a CPU reference "
          "(dense attention over its whole history, double precision); a wrong one exits 3");
ABSL_FLAG(bool, fail_on_errors, false,
          "exit 4 when the tier answered any call with an error (counted in the report either "
          "way), as a smoke test wants");
ABSL_FLAG(uint64_t, seed, 1, "the workload's seed (token ids, lengths, q/k/v, arrivals)");
ABSL_FLAG(absl::Duration, progress, absl::Seconds(1), "how often the progress line updates");
ABSL_FLAG(std::string, json, "", "write the JSON report here");
ABSL_FLAG(std::string, html, "", "write the HTML report here (one self-contained file)");

namespace kvtier {
namespace {

constexpr int kCannotRun = 1;
constexpr int kBadFlags = 2;
constexpr int kWrongOutput = 3;
constexpr int kTierErrors = 4;

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "kvtier-load: %s\n", status.ToString().c_str());
  return code;
}

absl::StatusOr<LoadConfig> ConfigFromFlags() {
  LoadConfig c;
  c.coordinator = absl::GetFlag(FLAGS_coordinator);
  c.model = absl::GetFlag(FLAGS_model);
  c.model_version = absl::GetFlag(FLAGS_model_version);
  c.tenant = absl::GetFlag(FLAGS_tenant);
  c.tenants = absl::GetFlag(FLAGS_tenants);
  c.tenant_skew = absl::GetFlag(FLAGS_tenant_skew);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "closed" && mode != "open") {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode: expected closed or open, got \"", mode, "\""));
  }
  c.trace_path = absl::GetFlag(FLAGS_trace);
  c.mode = mode == "open" || !c.trace_path.empty() ? LoadMode::kOpen : LoadMode::kClosed;
  c.speedup = absl::GetFlag(FLAGS_speedup);
  c.max_requests = absl::GetFlag(FLAGS_max_requests);
  c.trace_length_scale = absl::GetFlag(FLAGS_trace_length_scale);
  absl::StatusOr<Slo> slo = Slo::Parse(absl::GetFlag(FLAGS_slo));
  if (!slo.ok()) return slo.status();
  c.slo = *std::move(slo);
  c.sessions = absl::GetFlag(FLAGS_sessions);
  c.session_rate = absl::GetFlag(FLAGS_session_rate);
  c.burstiness = absl::GetFlag(FLAGS_burstiness);
  c.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  c.turns = absl::GetFlag(FLAGS_turns);
  c.system_tokens = absl::GetFlag(FLAGS_system_tokens);
  c.prefix_groups = absl::GetFlag(FLAGS_prefix_groups);
  const std::pair<const char*, Distribution*> distributions[] = {
      {"--prompt_tokens", &c.prompt_tokens},
      {"--decode_tokens", &c.decode_tokens},
      {"--think_ms", &c.think_ms},
  };
  const std::string texts[] = {absl::GetFlag(FLAGS_prompt_tokens),
                               absl::GetFlag(FLAGS_decode_tokens), absl::GetFlag(FLAGS_think_ms)};
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Distribution> parsed = Distribution::Parse(distributions[i].first, texts[i]);
    if (!parsed.ok()) return parsed.status();
    *distributions[i].second = *parsed;
  }
  c.retain_for = absl::GetFlag(FLAGS_retain);
  c.warmup = absl::GetFlag(FLAGS_warmup);
  c.duration = absl::GetFlag(FLAGS_duration);
  c.slice = absl::GetFlag(FLAGS_slice);
  c.verify_fraction = absl::GetFlag(FLAGS_verify);
  c.seed = absl::GetFlag(FLAGS_seed);
  c.progress_every = absl::GetFlag(FLAGS_progress);
  c.json_path = absl::GetFlag(FLAGS_json);
  c.html_path = absl::GetFlag(FLAGS_html);
  if (absl::Status valid = ValidateLoadConfig(c); !valid.ok()) return valid;
  if (!c.trace_path.empty()) {
    absl::StatusOr<std::vector<TraceRequest>> trace = ReadMooncakeTrace(c.trace_path);
    if (!trace.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--trace: ", trace.status().message()));
    }
    c.trace = *std::move(trace);
  }
  return c;
}

// The spec of the model to load, from the tier's stats: --model, or the only model.
absl::StatusOr<v1::ModelSpec> TierModel(Client& client, const LoadConfig& config) {
  absl::StatusOr<v1::GetStatsResponse> stats = client.GetStats();
  if (!stats.ok()) {
    return absl::Status(stats.status().code(),
                        absl::StrCat("cannot reach the tier at --coordinator=", config.coordinator,
                                     ": ", stats.status().message()));
  }
  std::vector<std::string> names;
  const v1::ModelStats* chosen = nullptr;
  for (const v1::ModelStats& model : stats->models()) {
    names.push_back(ModelIdString(model.model().id()));
    const bool named = model.model().id().name() == config.model &&
                       model.model().id().version() == config.model_version;
    if (named || (config.model.empty() && stats->models_size() == 1)) chosen = &model;
  }
  if (chosen == nullptr) {
    const std::string wanted =
        config.model.empty()
            ? "--model: name one of the tier's models"
            : absl::StrCat("--model: the tier has no model ",
                           config.model_version.empty()
                               ? config.model
                               : absl::StrCat(config.model, "@", config.model_version));
    return absl::NotFoundError(
        absl::StrCat(wanted, " (the tier at ", config.coordinator,
                     " has: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  if (!chosen->ready()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", ModelIdString(chosen->model().id()),
                     " is not ready: not every head range has a shard yet"));
  }
  return chosen->model();
}

absl::Status WriteFile(const std::string& flag, const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return absl::UnavailableError(absl::StrCat(flag, ": cannot write ", path));
  return absl::OkStatus();
}

int Main() {
  absl::StatusOr<LoadConfig> config = ConfigFromFlags();
  if (!config.ok()) return Fail(kBadFlags, config.status());
  ClientOptions options;
  options.coordinator_address = config->coordinator;
  absl::StatusOr<ChannelSecurity> security = ChannelSecurityFromFlags();
  if (!security.ok()) return Fail(kBadFlags, security.status());
  options.security = *std::move(security);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  if (!client.ok()) return Fail(kBadFlags, client.status());
  absl::StatusOr<v1::ModelSpec> model = TierModel(**client, *config);
  if (!model.ok()) return Fail(kCannotRun, model.status());

  ProgressLine progress(stderr);
  absl::StatusOr<LoadResult> result =
      RunLoad(*config, *model, **client, TestCorruptOutput(), &progress);
  if (!result.ok()) return Fail(kCannotRun, result.status());
  std::printf("%s", LoadReportTable(*config, *model, *result).c_str());
  std::fflush(stdout);
  if (!config->json_path.empty() || !config->html_path.empty()) {
    const std::string json = LoadReportJson(*config, *model, *result);
    if (!config->json_path.empty()) {
      if (absl::Status s = WriteFile("--json", config->json_path, json); !s.ok()) {
        return Fail(kCannotRun, s);
      }
    }
    if (!config->html_path.empty()) {
      if (absl::Status s = WriteFile("--html", config->html_path, LoadReportHtml(json)); !s.ok()) {
        return Fail(kCannotRun, s);
      }
    }
  }
  if (result->counts.verify_mismatches > 0) {
    for (const SessionRow& row : result->sessions) {
      if (row.verified && !row.error.empty()) {
        std::fprintf(stderr, "kvtier-load: session #%lld %s: %s\n",
                     static_cast<long long>(row.index), row.session_id.c_str(), row.error.c_str());
        break;
      }
    }
    std::fprintf(stderr, "kvtier-load: --verify: %lld of %lld outputs checked were wrong\n",
                 static_cast<long long>(result->counts.verify_mismatches),
                 static_cast<long long>(result->counts.verified_outputs));
    return kWrongOutput;
  }
  if (absl::GetFlag(FLAGS_fail_on_errors) && !result->counts.errors.empty()) {
    std::vector<std::string> counts;
    for (const auto& [code, count] : result->counts.errors) {
      counts.push_back(absl::StrCat(count, " ", code));
    }
    std::fprintf(stderr, "kvtier-load: --fail_on_errors: the tier answered with errors (%s)\n",
                 absl::StrJoin(counts, ", ").c_str());
    return kTierErrors;
  }
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(
      argc, argv,
      "per-session load testing of a kvtier tier: conversations with real q/k/v for every "
      "layer, latency per layer round trip, per token, to the first token and per turn, to "
      "p99.99, per session and per tenant, goodput under --slo; or a Mooncake trace replayed "
      "(--trace); --json and --html reports. Credentials per tenant have not landed (they wait "
      "for the security issue, README Security): --tenant is taken by the tier as given.\n"
      "  kvtier-load --coordinator=127.0.0.1:50051 [--mode=closed|open] [--duration=60s] "
      "[--tenants=M --tenant_skew=S] [--slo=token_p99=20ms] [--json=PATH] [--html=PATH]\n"
      "  kvtier-load --coordinator=127.0.0.1:50051 --trace=PATH [--speedup=X] "
      "[--trace_length_scale=S] [--max_requests=N]\n"
      "Exit status: 0 done, 1 could not run, 2 bad flags, 3 --verify found a wrong output, 4 "
      "--fail_on_errors and the tier answered with errors.");
  return kvtier::Main();
}
