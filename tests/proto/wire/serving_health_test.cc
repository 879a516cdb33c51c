// ServingHealth through a real server's grpc.health.v1: the always-serving services answer
// SERVING at once, the server and the ready-gated ones only once ready, and nothing once it
// drains, whatever is said after.
#include "proto/wire/serving_health.h"

#include <string>

#include "gtest/gtest.h"
#include "proto/wire/server_builder.h"
#include "tests/server_probe.h"

namespace kvtier {
namespace {

using test::CheckServing;

TEST(ServingHealthTest, ReadinessGatesTheServerAndDrainingStopsEverything) {
  absl::StatusOr<StartedServer> started = StartServer("listen", "127.0.0.1:0", 1 << 20, {});
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string address = "127.0.0.1:" + std::to_string(started->port);
  ServingHealth health(started->server.get(), {"test.Registry"}, {"test.Sessions"});
  EXPECT_FALSE(CheckServing(address).ok());
  EXPECT_FALSE(CheckServing(address, "test.Sessions").ok());
  EXPECT_TRUE(CheckServing(address, "test.Registry").ok());

  health.SetReady(true);
  EXPECT_TRUE(CheckServing(address).ok());
  EXPECT_TRUE(CheckServing(address, "test.Sessions").ok());

  health.SetReady(false);
  EXPECT_FALSE(CheckServing(address).ok());
  EXPECT_TRUE(CheckServing(address, "test.Registry").ok());

  health.SetReady(true);
  health.Drain();
  for (const std::string service : {"", "test.Sessions", "test.Registry"}) {
    EXPECT_FALSE(CheckServing(address, service).ok()) << service;
  }
  health.SetReady(true);
  EXPECT_FALSE(CheckServing(address).ok());
  started->server->Shutdown();
}

}  // namespace
}  // namespace kvtier
