// Checks of request fields the coordinator's calls share: INVALID_ARGUMENT naming the field.
// Pure functions.
#ifndef KVTIER_SERVICE_REQUEST_CHECKS_H_
#define KVTIER_SERVICE_REQUEST_CHECKS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvtier {

// Token ids are >= 0.
absl::Status CheckTokenIds(absl::string_view field, absl::Span<const int32_t> tokens);

// A tenant is 1..128 bytes.
absl::Status CheckTenant(const std::string& tenant);

}  // namespace kvtier

#endif  // KVTIER_SERVICE_REQUEST_CHECKS_H_
