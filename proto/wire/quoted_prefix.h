// How an error message echoes a string from a request: quoted, escaped and cut to a short
// prefix, so that a message stays far below gRPC's metadata limit (8 KiB by default; a status
// message over it fails the call with another error) whatever the client sent. Pure function.
#ifndef KVTIER_PROTO_WIRE_QUOTED_PREFIX_H_
#define KVTIER_PROTO_WIRE_QUOTED_PREFIX_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace kvtier {

inline constexpr size_t kQuotedPrefixBytes = 64;

// `value` in double quotes with quotes, backslashes and unprintable bytes C-hex-escaped; a
// value over `max_bytes` is cut to its first `max_bytes` bytes and followed by its size:
// "abc…" (1048576 bytes).
std::string QuotedPrefix(absl::string_view value, size_t max_bytes = kQuotedPrefixBytes);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_QUOTED_PREFIX_H_
