// kvtier-local: the embedded default tier. A coordinator and N CPU shard workers in one
// process, on loopback, with one model registered:
//
//   kvtier-local --shards=2 --port=50051
//
// prints the addresses and serves until SIGTERM or SIGINT. Zero-config on loopback: anyone may
// call; --credentials_file turns authentication on, --tls_cert_file TLS (README: Security).
// For a multi-process tier run kvtier-coordinator and kvtier-shard instead (README).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/command_line.h"
#include "proto/wire/metrics_flags.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/security_flags.h"
#include "proto/wire/stop_signals.h"
#include "service/local/local_tier.h"
#include "service/tenant_quota_flags.h"

ABSL_FLAG(int, shards, 2, "shard workers (head ranges of the model)");
ABSL_FLAG(std::string, host, "127.0.0.1", "host to listen on");
ABSL_FLAG(int, port, 50051, "the coordinator's port (0: any free port)");
ABSL_FLAG(int, shard_port, 0, "shard i listens on shard_port + i (0: any free ports)");
ABSL_FLAG(std::string, model,
          "name=toy,layers=4,kv_heads=2,q_heads=8,head_dim=64,dtype=fp32,block_size=16,"
          "blocks=4096",
          "the model to serve, as comma-separated key=value pairs (see kvtier-coordinator "
          "--help); its shards key defaults to --shards");
ABSL_FLAG(int, capacity_mib, 1024, "K/V memory each shard may use");
ABSL_FLAG(std::string, device, "cpu",
          "where the shards keep K/V and run attention: cpu, or cuda:N (all on device N)");
ABSL_FLAG(int, threads_per_shard, 0, "CPU attention threads per shard (0: cores / shards)");
ABSL_FLAG(std::string, address_file, "",
          "once the tier is ready, write the coordinator's host:port here (for scripts)");

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(argc, argv,
                           "a coordinator and N shards on loopback, in one process.\n"
                           "  kvtier-local --shards=2 --port=50051 [--device=cpu|cuda:N]");

  kvtier::StopSignals stop_signals;  // before any thread starts

  const int shards = absl::GetFlag(FLAGS_shards);
  absl::StatusOr<kvtier::v1::ModelSpec> model =
      kvtier::ParseModelSpec(absl::StrCat("shards=", shards, ",", absl::GetFlag(FLAGS_model)));
  if (!model.ok()) {
    std::fprintf(stderr, "kvtier-local: --model: %s\n",
                 std::string(model.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<kvtier::PoolDevice> device =
      kvtier::ParsePoolDevice("--device", absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::fprintf(stderr, "kvtier-local: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  kvtier::LocalTierOptions options;
  options.num_shards = shards;
  options.device = *device;
  options.host = absl::GetFlag(FLAGS_host);
  options.coordinator_port = absl::GetFlag(FLAGS_port);
  options.first_shard_port = absl::GetFlag(FLAGS_shard_port);
  options.model = *model;
  options.shard_capacity_bytes = int64_t{absl::GetFlag(FLAGS_capacity_mib)} << 20;
  absl::StatusOr<kvtier::ServerSecurity> security = kvtier::ServerSecurityFromFlags();
  if (!security.ok()) {
    std::fprintf(stderr, "kvtier-local: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  options.security = *std::move(security);
  if (absl::Status status = kvtier::ApplyTenantQuotaFlags(&options.coordinator); !status.ok()) {
    std::fprintf(stderr, "kvtier-local: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  const int threads = absl::GetFlag(FLAGS_threads_per_shard);
  options.attention_threads_per_shard =
      threads > 0 ? threads
                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / shards);

  absl::StatusOr<std::unique_ptr<kvtier::Metrics>> metrics = kvtier::MetricsFromFlags();
  if (!metrics.ok()) {
    std::fprintf(stderr, "kvtier-local: %s\n", std::string(metrics.status().message()).c_str());
    return 2;
  }
  options.metrics = metrics->get();

  absl::StatusOr<std::unique_ptr<kvtier::LocalTier>> tier = kvtier::LocalTier::Start(options);
  if (!tier.ok()) {
    std::fprintf(stderr, "kvtier-local: %s\n", tier.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "kvtier-local: coordinator %s, model %s (%d layers, %d/%d heads, head_dim %d), pools on "
      "%s\n",
      (*tier)->coordinator_address().c_str(), kvtier::ModelIdString(model->id()).c_str(),
      model->num_layers(), model->num_q_heads(), model->num_kv_heads(), model->head_dim(),
      device->Name().c_str());
  for (int i = 0; i < (*tier)->num_shards(); ++i) {
    std::printf("kvtier-local: shard %d %s\n", i, (*tier)->shard_address(i).c_str());
  }
  if ((*metrics)->port() != 0) {
    std::printf("kvtier-local: metrics of the whole tier on port %d, at /metrics\n",
                (*metrics)->port());
  }
  std::fflush(stdout);
  if (const std::string path = absl::GetFlag(FLAGS_address_file); !path.empty()) {
    std::ofstream(path) << (*tier)->coordinator_address() << "\n";
  }

  const int signal = stop_signals.Wait();
  std::printf("kvtier-local: %s, shutting down\n", strsignal(signal));
  return 0;
}
