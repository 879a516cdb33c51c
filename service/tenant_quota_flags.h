// The coordinator's tenant-quota flags, shared by kvtier-coordinator and kvtier-local:
//   --tenant_quotas=acme=4096,globex=512   blocks per model version, per tenant
//   --default_tenant_quota=N               for every other tenant (0: no cap)
// (CoordinatorOptions::tenant_quotas says what a quota does.)
#ifndef KVTIER_SERVICE_TENANT_QUOTA_FLAGS_H_
#define KVTIER_SERVICE_TENANT_QUOTA_FLAGS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/coordinator.h"

namespace kvtier {

// Sets `options`' quotas from the flags; INVALID_ARGUMENT naming the flag and the entry.
absl::Status ApplyTenantQuotaFlags(CoordinatorOptions* options);

// "acme=4096,globex=512" into `quotas`: each tenant once, each quota >= 1.
absl::Status ParseTenantQuotas(absl::string_view text,
                               absl::flat_hash_map<std::string, int32_t>* quotas);

}  // namespace kvtier

#endif  // KVTIER_SERVICE_TENANT_QUOTA_FLAGS_H_
