#include "service/tenant_quota_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/wire/quoted_prefix.h"

ABSL_FLAG(std::string, tenant_quotas, "",
          "per-tenant caps on the blocks of each model version a tenant's sessions may own, as "
          "tenant=blocks,...; a tenant at its cap has its own cached blocks and retained sessions "
          "evicted, then gets RESOURCE_EXHAUSTED (README: Security)");
ABSL_FLAG(int32_t, default_tenant_quota, 0,
          "the cap for tenants --tenant_quotas does not list (0: no cap)");

namespace kvtier {

absl::Status ParseTenantQuotas(absl::string_view text,
                               absl::flat_hash_map<std::string, int32_t>* quotas) {
  if (text.empty()) return absl::OkStatus();
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    const std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    int32_t blocks = 0;
    if (parts.first.empty() || !absl::SimpleAtoi(parts.second, &blocks) || blocks < 1) {
      return absl::InvalidArgumentError(absl::StrCat("tenant_quotas: ", QuotedPrefix(entry),
                                                     ": expected tenant=blocks with blocks >= 1"));
    }
    if (!quotas->emplace(parts.first, blocks).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant_quotas: tenant ", QuotedPrefix(parts.first), " listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyTenantQuotaFlags(CoordinatorOptions* options) {
  const int32_t default_quota = absl::GetFlag(FLAGS_default_tenant_quota);
  if (default_quota < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_tenant_quota: expected >= 0, got ", default_quota));
  }
  options->default_tenant_quota = default_quota;
  return ParseTenantQuotas(absl::GetFlag(FLAGS_tenant_quotas), &options->tenant_quotas);
}

}  // namespace kvtier
