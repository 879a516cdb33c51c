#include "proto/wire/listen_address.h"

#include <unistd.h>

#include <algorithm>
#include <climits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {
namespace {

bool IsWildcardHost(absl::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "[::]";
}

}  // namespace

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

absl::StatusOr<HostPort> ParseAdvertisedAddress(absl::string_view field,
                                                absl::string_view address) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(field, address);
  if (!parsed.ok()) return parsed;
  const absl::string_view host = parsed->host;
  // A bracketed host holds an IPv6 address; a bare one a name or an IPv4 address.
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  const absl::string_view inner = bracketed ? host.substr(1, host.size() - 2) : host;
  // NOTE: a DNS name has at most 253 characters.
  const bool host_ok =
      !inner.empty() && inner.size() <= 253 && std::all_of(inner.begin(), inner.end(), [&](char c) {
        return bracketed ? absl::ascii_isxdigit(c) || c == ':' || c == '.'
                         : absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_';
      });
  if (!host_ok || IsWildcardHost(host) || parsed->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected host:port or [v6]:port with a port 1..65535, got ",
                     QuotedPrefix(address)));
  }
  return parsed;
}

std::string ReachableHost(const std::string& host) {
  if (!IsWildcardHost(host)) return host;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

std::string WithPort(absl::string_view address, int port) {
  return absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
}

}  // namespace kvtier
