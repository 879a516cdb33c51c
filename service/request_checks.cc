#include "service/request_checks.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

absl::Status CheckTokenIds(absl::string_view field, absl::Span<const int32_t> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: expected a token id >= 0, got ", tokens[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTenant(const std::string& tenant) {
  if (!tenant.empty() && tenant.size() <= 128) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("tenant: expected 1..128 bytes, got ", tenant.size()));
}

}  // namespace kvtier
