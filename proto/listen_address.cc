#include "proto/listen_address.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

std::string WithPort(absl::string_view address, int port) {
  const size_t colon = address.rfind(':');
  const absl::string_view host =
      colon == absl::string_view::npos ? address : address.substr(0, colon);
  return absl::StrCat(host, ":", port);
}

}  // namespace kvtier
