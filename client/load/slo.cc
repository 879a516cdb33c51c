#include "client/load/slo.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kvtier {
namespace {

constexpr absl::string_view kQuantileNames[] = {"p50", "p90", "p99", "p99_9", "max"};
constexpr double kQuantiles[] = {0.5, 0.9, 0.99, 0.999, 1.0};

absl::Status BadPart(absl::string_view part, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("--slo: \"", part, "\": expected ", expected));
}

}  // namespace

absl::StatusOr<Slo> Slo::Parse(absl::string_view text) {
  Slo slo;
  if (text.empty()) return slo;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::pair<absl::string_view, absl::string_view> name_limit =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    const std::pair<absl::string_view, absl::string_view> metric_quantile =
        absl::StrSplit(name_limit.first, absl::MaxSplits('_', 1));
    Target target;
    target.name = std::string(name_limit.first);
    target.ttft = metric_quantile.first == "ttft";
    const auto* quantile =
        std::find(std::begin(kQuantileNames), std::end(kQuantileNames), metric_quantile.second);
    if ((!target.ttft && metric_quantile.first != "token") ||
        quantile == std::end(kQuantileNames)) {
      return BadPart(part, "token or ttft, then _p50, _p90, _p99, _p99_9 or _max");
    }
    target.quantile = kQuantiles[quantile - std::begin(kQuantileNames)];
    if (!absl::ParseDuration(name_limit.second, &target.limit) ||
        target.limit <= absl::ZeroDuration()) {
      return BadPart(part, "NAME=DURATION with a duration > 0 (20ms, 1.5s)");
    }
    for (const Target& seen : slo.targets_) {
      if (seen.name == target.name) return BadPart(part, "each target once");
    }
    slo.targets_.push_back(std::move(target));
  }
  return slo;
}

bool Slo::Met(const LatencyHistogram& token, const LatencyHistogram& ttft) const {
  for (const Target& target : targets_) {
    const LatencyHistogram& samples = target.ttft ? ttft : token;
    if (samples.count() > 0 &&
        samples.Percentile(target.quantile) > absl::ToInt64Nanoseconds(target.limit)) {
      return false;
    }
  }
  return true;
}

std::string Slo::ToString() const {
  return absl::StrJoin(targets_, ",", [](std::string* out, const Target& target) {
    absl::StrAppend(out, target.name, "=", absl::FormatDuration(target.limit));
  });
}

}  // namespace kvtier
