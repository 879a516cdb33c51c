// CoordinatorServer over real gRPC on loopback: it holds its port alone, so a second server on
// that port fails, naming the address, and the first serves on.
#include "service/coordinator_server.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server_probe.h"

namespace kvtier::test {
namespace {

TEST(CoordinatorServerTest, ASecondServerOnItsPortFailsNamingItAndTheFirstServesOn) {
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> first = CoordinatorServer::Start({});
  ASSERT_TRUE(first.ok()) << first.status();
  CoordinatorServerOptions options;
  options.listen_address = (*first)->address();
  const absl::StatusOr<std::unique_ptr<CoordinatorServer>> second =
      CoordinatorServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_EQ(second.status().message(),
            absl::StrCat("listen_address: ", (*first)->address(), " is already in use"));
  EXPECT_TRUE(CheckServing((*first)->address()).ok());
}

}  // namespace
}  // namespace kvtier::test
