#include "client/ctl/ctl_output.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/ctl/ctl_command.h"
#include "client/ctl/text_table.h"
#include "google/protobuf/util/json_util.h"
#include "proto/wire/error_reason.h"

namespace kvtier {
namespace {

std::string YesNo(bool value) { return value ? "yes" : "no"; }

// cached/prompt tokens as a percentage; "-" before any lookup.
std::string HitRate(const v1::CacheCounters& cache) {
  if (cache.prompt_tokens() == 0) return "-";
  return absl::StrFormat("%.1f%%", 100.0 * cache.cached_tokens() / cache.prompt_tokens());
}

std::string ModelsTable(const v1::GetStatsResponse& stats) {
  if (stats.models().empty()) return "  no models registered\n";
  TextTable table(2);
  table.AddRow({"MODEL", "READY", "DRAINING", "SHARDS", "SESSIONS", "BLOCKS_USED", "BLOCKS_FREE",
                "BLOCKS_CACHED", "HIT_RATE", "FORKS", "SESSIONS_INVALIDATED",
                "BLOCKS_INVALIDATED"});
  for (const v1::ModelStats& model : stats.models()) {
    const v1::CacheCounters& cache = model.cache();
    table.AddRow({ModelArgument(model.model().id()), YesNo(model.ready()),
                  YesNo(model.draining()),
                  absl::StrCat(model.live_shards(), "/", model.model().num_shards()),
                  absl::StrCat(model.sessions()), absl::StrCat(model.blocks_used()),
                  absl::StrCat(model.blocks_free()), absl::StrCat(model.blocks_cached()),
                  HitRate(cache), absl::StrCat(cache.forks()),
                  absl::StrCat(cache.sessions_invalidated()),
                  absl::StrCat(cache.blocks_invalidated())});
  }
  return table.ToString();
}

std::string TierTable(const v1::GetStatsResponse& stats) {
  const v1::TierCounters& tier = stats.tier();
  TextTable table(2);
  table.AddRow({"live shards", absl::StrCat(stats.shards())});
  table.AddRow({"forks", absl::StrCat(tier.forks())});
  table.AddRow({"invalidations",
                absl::StrCat("session ", tier.session_invalidations(), ", prefix ",
                             tier.prefix_invalidations(), ", tenant ",
                             tier.tenant_invalidations(), ", model ",
                             tier.model_invalidations())});
  table.AddRow({"models retired", absl::StrCat(tier.models_retired())});
  table.AddRow({"sessions invalidated", absl::StrCat(tier.sessions_invalidated())});
  table.AddRow({"blocks invalidated", absl::StrCat(tier.blocks_invalidated())});
  table.AddRow({"shards dropped", absl::StrCat(tier.shards_dropped())});
  return table.ToString();
}

// What an invalidation dropped, after `title`; `extra` rows follow.
std::string InvalidationText(const std::string& title, const v1::InvalidationResult& result,
                             std::vector<std::vector<std::string>> extra = {}) {
  TextTable table(2);
  table.AddRow({"sessions invalidated", absl::StrCat(result.sessions())});
  table.AddRow({"blocks revoked", absl::StrCat(result.blocks())});
  table.AddRow({"cached blocks revoked", absl::StrCat(result.cached_blocks())});
  table.AddRow({"shards acknowledged", absl::StrCat(result.shards_acknowledged())});
  table.AddRow({"shards dropped", absl::StrCat(result.shards_dropped())});
  for (std::vector<std::string>& row : extra) table.AddRow(std::move(row));
  return absl::StrCat(title, "\n", table.ToString());
}

}  // namespace

std::string ResultText(const v1::GetStatsRequest&, const v1::GetStatsResponse& response) {
  return absl::StrCat("models\n", ModelsTable(response), "tier\n", TierTable(response));
}

std::string ResultText(const v1::InvalidateSessionRequest& request,
                       const v1::InvalidateSessionResponse& response) {
  return InvalidationText(absl::StrCat("invalidated session ", request.session_id(),
                                       " of tenant ", request.tenant()),
                          response.result());
}

std::string ResultText(const v1::InvalidatePrefixRequest& request,
                       const v1::InvalidatePrefixResponse& response) {
  return InvalidationText(
      absl::StrCat("invalidated a prefix of ", request.tokens_size(), " tokens of tenant ",
                   request.tenant(), " in ", ModelArgument(request.model())),
      response.result());
}

std::string ResultText(const v1::InvalidateTenantRequest& request,
                       const v1::InvalidateTenantResponse& response) {
  return InvalidationText(absl::StrCat("invalidated tenant ", request.tenant(), " in every model"),
                          response.result());
}

std::string ResultText(const v1::InvalidateModelRequest& request,
                       const v1::InvalidateModelResponse& response) {
  return InvalidationText(absl::StrCat("invalidated all K/V of ", ModelArgument(request.model()),
                                       " (it stays registered)"),
                          response.result());
}

std::string ResultText(const v1::RetireModelRequest& request,
                       const v1::RetireModelResponse& response) {
  const std::string model = ModelArgument(response.model());
  std::string title = absl::StrCat("retired ", model, " immediately");
  if (request.mode() == v1::RETIRE_MODE_DRAIN) {
    title = response.draining_sessions() == 0
                ? absl::StrCat("retired ", model, " (drained: no active sessions)")
                : absl::StrCat("retiring ", model, " by draining: gone once its ",
                               response.draining_sessions(), " active sessions end their turn");
  }
  return InvalidationText(title, response.result(),
                          {{"draining sessions", absl::StrCat(response.draining_sessions())}});
}

absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto printed = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat("--json: ", std::string(printed.message())));
  }
  return json;
}

std::string FailureText(const absl::Status& status) {
  const v1::ErrorReason reason = ReasonOf(status);
  if (reason == v1::ERROR_REASON_UNSPECIFIED) return std::string(status.message());
  return absl::StrCat(status.message(), " (reason ",
                      absl::StripPrefix(v1::ErrorReason_Name(reason), "ERROR_REASON_"), ")");
}

}  // namespace kvtier
