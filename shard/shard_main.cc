// kvtier-shard: the shard worker process. Serves kvtier.v1.AttentionService for the head ranges the
// coordinator assigns it, until SIGTERM or SIGINT, then leaves the tier cleanly.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proto/wire/command_line.h"
#include "proto/wire/metrics_flags.h"
#include "proto/wire/security_flags.h"
#include "proto/wire/stop_signals.h"
#include "shard/shard_server.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50061",
          "host:port to serve kvtier.v1.AttentionService on (port 0: any free port)");
ABSL_FLAG(std::string, advertise, "",
          "host:port the coordinator gives clients for this shard (default: this machine's "
          "host name and the bound port)");
ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051",
          "host:port of the coordinator's kvtier.v1.ShardRegistryService");
ABSL_FLAG(double, capacity_gib, 4.0,
          "memory the shard may spend on K/V pools (host or device memory), in GiB");
ABSL_FLAG(std::string, device, "cpu",
          "where K/V pools live and attention runs: cpu, or cuda:N for CUDA device N");
ABSL_FLAG(int, threads, 0, "CPU attention threads (0: one per hardware thread)");
ABSL_FLAG(int, step_threads, 2,
          "threads that run the data plane's larger layers (K/V writes, attention calls)");
ABSL_FLAG(int, inline_kv_kib, 512,
          "a layer whose attention reads at most this much K/V, in KiB, runs on the gRPC thread "
          "that received it instead of a step thread (0: none does)");
ABSL_FLAG(int, max_streams, 256,
          "Step streams served at once; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_message_mib, 256, "largest gRPC message received or sent, in MiB (1..2047)");

namespace kvtier {
namespace {

constexpr int kExitBadUsage = 2;

// The server's options from the flags; INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<ShardServerOptions> OptionsFromFlags() {
  ShardServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.advertised_address = absl::GetFlag(FLAGS_advertise);
  options.coordinator_address = absl::GetFlag(FLAGS_coordinator);
  const double capacity_gib = absl::GetFlag(FLAGS_capacity_gib);
  if (!(capacity_gib > 0 && capacity_gib < 1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--capacity_gib: expected 0 < G < 1048576, got ", capacity_gib));
  }
  options.capacity_bytes = static_cast<int64_t>(std::ldexp(capacity_gib, 30));
  absl::StatusOr<PoolDevice> device = ParsePoolDevice("--device", absl::GetFlag(FLAGS_device));
  if (!device.ok()) return device.status();
  options.device = *device;
  options.attention_threads = absl::GetFlag(FLAGS_threads);
  if (options.attention_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: expected 0 or more, got ", options.attention_threads));
  }
  for (const auto& [flag, value, target] :
       {std::tuple<const char*, int, int*>{"--step_threads", absl::GetFlag(FLAGS_step_threads),
                                           &options.step_threads},
        std::tuple<const char*, int, int*>{"--max_streams", absl::GetFlag(FLAGS_max_streams),
                                           &options.max_streams}}) {
    if (value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": expected 1 or more, got ", value));
    }
    *target = value;
  }
  const int inline_kv_kib = absl::GetFlag(FLAGS_inline_kv_kib);
  if (inline_kv_kib < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--inline_kv_kib: expected 0 or more, got ", inline_kv_kib));
  }
  options.inline_kv_bytes = int64_t{inline_kv_kib} << 10;
  const int max_message_mib = absl::GetFlag(FLAGS_max_message_mib);
  if (max_message_mib < 1 || max_message_mib > 2047) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_message_mib: expected 1..2047, got ", max_message_mib));
  }
  options.max_message_bytes = max_message_mib << 20;
  absl::StatusOr<ServerSecurity> security = ServerSecurityFromFlags();
  if (!security.ok()) return security.status();
  options.security = *std::move(security);
  absl::StatusOr<ChannelSecurity> channels = ChannelSecurityFromFlags();
  if (!channels.ok()) return channels.status();
  options.channels = *std::move(channels);
  return options;
}

int Fail(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "kvtier-shard: %s\n", std::string(status.message()).c_str());
  return exit_code;
}

int Main(int argc, char** argv) {
  const std::vector<char*> positional = ParseCommandLine(
      argc, argv,
      "the kvtier shard worker: holds K/V head ranges and serves kvtier.v1.AttentionService.\n"
      "Usage: kvtier-shard [--listen=host:port] [--advertise=host:port] "
      "[--coordinator=host:port] [--device=cpu|cuda:N] [--capacity_gib=G] [--threads=N] "
      "[--max_message_mib=M] [--credentials_file=F --token_file=F] [--tls_*_file=F] "
      "[--metrics_listen=host:port]");
  if (positional.size() > 1) {
    return Fail(absl::InvalidArgumentError(
                    absl::StrCat("unexpected argument \"", positional[1], "\" (see --help)")),
                kExitBadUsage);
  }
  absl::StatusOr<ShardServerOptions> options = OptionsFromFlags();
  if (!options.ok()) return Fail(options.status(), kExitBadUsage);

  StopSignals stop_signals;  // before any thread starts

  absl::StatusOr<std::unique_ptr<Metrics>> metrics = MetricsFromFlags();
  if (!metrics.ok()) return Fail(metrics.status(), kExitBadUsage);
  options->metrics = metrics->get();
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(*options);
  if (!server.ok()) {
    return Fail(server.status(),
                absl::IsInvalidArgument(server.status()) ? kExitBadUsage : EXIT_FAILURE);
  }
  std::printf("kvtier-shard: serving on %s, pools on %s, coordinator %s\n",
              (*server)->address().c_str(), options->device.Name().c_str(),
              options->coordinator_address.c_str());
  if ((*metrics)->port() != 0) {
    std::printf("kvtier-shard: metrics on port %d, at /metrics\n", (*metrics)->port());
  }
  std::fflush(stdout);

  const int signal = stop_signals.Wait();
  std::printf("kvtier-shard: %s, leaving the tier\n", strsignal(signal));
  std::fflush(stdout);
  (*server)->Shutdown();
  return EXIT_SUCCESS;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) { return kvtier::Main(argc, argv); }
