// RunLoad: one whole kvtier-load run against a tier. Closed loop: --sessions threads, each
// running conversations back to back (one each when --duration is 0). Open loop: the
// workload's arrival times, served by --max_sessions threads; an arrival waits for a free one,
// and its latencies count from its arrival time (coordinated omission). A progress thread
// updates the live line. The process's CPU time over the run is the tool's own cost.
//
// Thread-safe as far as `client` is; one run at a time per recorder.
#ifndef KVTIER_CLIENT_LOAD_LOAD_RUNNER_H_
#define KVTIER_CLIENT_LOAD_LOAD_RUNNER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/load/load_config.h"
#include "client/load/load_result.h"
#include "client/load/progress_line.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// `model` is the tier's spec of config.model. `corrupt_output`: see SessionDriver. `progress`
// may be null (no live line). INVALID_ARGUMENT naming the model's dtype if it is unknown.
absl::StatusOr<LoadResult> RunLoad(const LoadConfig& config, const v1::ModelSpec& model,
                                   Client& client, int64_t corrupt_output, ProgressLine* progress);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_RUNNER_H_
