// kvtier-coordinator: the tier's session service and shard registry.
//
//   kvtier-coordinator --listen=0.0.0.0:50051
//       --model=name=llama3-8b,layers=32,kv_heads=8,q_heads=32,head_dim=128,dtype=bf16,shards=2
//
// Shards (kvtier-shard --coordinator=HOST:50051) join and are given head ranges; front-ends
// connect with the client library. Runs until SIGTERM or SIGINT. --credentials_file turns
// authentication on, --tls_cert_file TLS (README: Security); --metrics_listen serves Prometheus
// metrics.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "proto/wire/command_line.h"
#include "proto/wire/metrics_flags.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/security_flags.h"
#include "proto/wire/stop_signals.h"
#include "service/coordinator_server.h"
#include "service/tenant_quota_flags.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "host:port to serve on (port 0: any free port)");
ABSL_FLAG(std::string, model, "",
          "a model to register at start, as comma-separated key=value pairs: name, version, "
          "layers, kv_heads, q_heads, head_dim, dtype (fp32|fp16|bf16), block_size, blocks, "
          "shards (more models and versions: AdminService.RegisterModel, or kvtier-ctl)");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(1), "how often shards heartbeat");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(5),
          "a shard silent this long is dropped, and its sessions with it");
ABSL_FLAG(absl::Duration, session_idle_timeout, absl::Minutes(10),
          "a session untouched this long is closed");
ABSL_FLAG(absl::Duration, default_retention, absl::Minutes(10),
          "how long EndTurn keeps a session when the request does not say");
ABSL_FLAG(int, max_message_mib, 64, "largest gRPC message accepted or sent");

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(argc, argv,
                           "sessions, blocks and shard membership of a kvtier tier.\n"
                           "  kvtier-coordinator --listen=0.0.0.0:50051 "
                           "--model=name=m,layers=4,kv_heads=2,q_heads=8,head_dim=64,shards=2");

  kvtier::StopSignals stop_signals;  // before any thread starts

  kvtier::CoordinatorServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_mib) << 20;
  options.coordinator.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.coordinator.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  options.coordinator.session_idle_timeout = absl::GetFlag(FLAGS_session_idle_timeout);
  options.coordinator.default_retention = absl::GetFlag(FLAGS_default_retention);
  absl::StatusOr<kvtier::ServerSecurity> security = kvtier::ServerSecurityFromFlags();
  absl::StatusOr<kvtier::ChannelSecurity> shard_channels = kvtier::ChannelSecurityFromFlags();
  for (const absl::Status& status : {security.status(), shard_channels.status()}) {
    if (!status.ok()) {
      std::fprintf(stderr, "kvtier-coordinator: %s\n", std::string(status.message()).c_str());
      return 2;
    }
  }
  options.security = *std::move(security);
  if (absl::Status status = kvtier::ApplyTenantQuotaFlags(&options.coordinator); !status.ok()) {
    std::fprintf(stderr, "kvtier-coordinator: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  options.coordinator.shard_channels = *std::move(shard_channels);

  absl::StatusOr<std::unique_ptr<kvtier::Metrics>> metrics = kvtier::MetricsFromFlags();
  if (!metrics.ok()) {
    std::fprintf(stderr, "kvtier-coordinator: %s\n",
                 std::string(metrics.status().message()).c_str());
    return 2;
  }
  options.metrics = metrics->get();

  std::vector<kvtier::v1::ModelSpec> models;
  if (const std::string text = absl::GetFlag(FLAGS_model); !text.empty()) {
    absl::StatusOr<kvtier::v1::ModelSpec> model = kvtier::ParseModelSpec(text);
    if (!model.ok()) {
      std::fprintf(stderr, "kvtier-coordinator: --model: %s\n",
                   std::string(model.status().message()).c_str());
      return 2;
    }
    models.push_back(*model);
  }

  absl::StatusOr<std::unique_ptr<kvtier::CoordinatorServer>> server =
      kvtier::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "kvtier-coordinator: %s\n", server.status().ToString().c_str());
    return 1;
  }
  for (const kvtier::v1::ModelSpec& model : models) {
    if (absl::Status status = (*server)->coordinator().RegisterModel(model).status();
        !status.ok()) {
      std::fprintf(stderr, "kvtier-coordinator: %s\n", status.ToString().c_str());
      return 2;
    }
  }
  std::printf("kvtier-coordinator: serving on %s, %zu model(s)\n", (*server)->address().c_str(),
              models.size());
  if ((*metrics)->port() != 0) {
    std::printf("kvtier-coordinator: metrics on port %d, at /metrics\n", (*metrics)->port());
  }
  std::fflush(stdout);

  const int signal = stop_signals.Wait();
  std::printf("kvtier-coordinator: %s, shutting down\n", strsignal(signal));
  (*server)->Shutdown();
  return 0;
}
