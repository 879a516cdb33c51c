#include "client/load/load_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

absl::Status Expect(bool ok, absl::string_view flag, absl::string_view expected,
                    const absl::AlphaNum& got) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, ": expected ", expected, ", got ", got));
}

}  // namespace

const char* LoadModeName(LoadMode mode) { return mode == LoadMode::kOpen ? "open" : "closed"; }

std::string TenantName(const LoadConfig& config, int tenant) {
  return config.tenants == 1 ? config.tenant : absl::StrCat(config.tenant, "-", tenant);
}

absl::Status ValidateLoadConfig(const LoadConfig& c) {
  const absl::Status checks[] = {
      Expect(!c.coordinator.empty(), "--coordinator", "host:port", "\"\""),
      Expect(!c.tenant.empty(), "--tenant", "a name", "\"\""),
      Expect(c.sessions >= 1, "--sessions", ">= 1", c.sessions),
      Expect(c.turns >= 1, "--turns", ">= 1", c.turns),
      Expect(c.system_tokens >= 0, "--system_tokens", ">= 0", c.system_tokens),
      Expect(c.prefix_groups >= 1, "--prefix_groups", ">= 1", c.prefix_groups),
      Expect(std::isfinite(c.session_rate) && c.session_rate > 0, "--session_rate", "> 0",
             c.session_rate),
      Expect(std::isfinite(c.burstiness) && c.burstiness > 0, "--burstiness", "> 0", c.burstiness),
      Expect(c.max_sessions >= 1, "--max_sessions", ">= 1", c.max_sessions),
      Expect(c.retain_for >= absl::ZeroDuration(), "--retain", ">= 0",
             absl::FormatDuration(c.retain_for)),
      Expect(c.warmup >= absl::ZeroDuration(), "--warmup", ">= 0", absl::FormatDuration(c.warmup)),
      Expect(c.duration >= absl::ZeroDuration(), "--duration", ">= 0",
             absl::FormatDuration(c.duration)),
      Expect(
          c.mode == LoadMode::kClosed || c.duration > absl::ZeroDuration() || !c.trace_path.empty(),
          "--duration", "> 0 in open loop (arrivals stop when it ends)",
          absl::FormatDuration(c.duration)),
      Expect(c.tenants >= 1, "--tenants", ">= 1", c.tenants),
      Expect(std::isfinite(c.tenant_skew) && c.tenant_skew >= 0, "--tenant_skew", ">= 0",
             c.tenant_skew),
      Expect(std::isfinite(c.speedup) && c.speedup > 0, "--speedup", "> 0", c.speedup),
      Expect(c.max_requests >= 0, "--max_requests", ">= 0", c.max_requests),
      Expect(c.trace_length_scale > 0 && c.trace_length_scale <= 1, "--trace_length_scale",
             "a scale in (0, 1]", c.trace_length_scale),
      Expect(c.slice > absl::ZeroDuration(), "--slice", "> 0", absl::FormatDuration(c.slice)),
      Expect(c.progress_every > absl::ZeroDuration(), "--progress", "> 0",
             absl::FormatDuration(c.progress_every)),
      Expect(c.verify_fraction >= 0 && c.verify_fraction <= 1, "--verify", "a fraction in [0, 1]",
             c.verify_fraction),
  };
  for (const absl::Status& status : checks) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace kvtier
