#include "proto/wire/listen_address.h"

#include <unistd.h>

#include <climits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {

absl::StatusOr<HostPort> ParseHostPort(absl::string_view field, absl::string_view address) {
  const size_t colon = address.rfind(':');
  HostPort parsed;
  if (colon != absl::string_view::npos) parsed.host = std::string(address.substr(0, colon));
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &parsed.port) || parsed.port < 0 ||
      parsed.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected host:port, got ", QuotedPrefix(address)));
  }
  return parsed;
}

std::string ReachableHost(const std::string& host) {
  if (!host.empty() && host != "0.0.0.0" && host != "[::]") return host;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

std::string WithPort(absl::string_view address, int port) {
  return absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
}

}  // namespace kvtier
