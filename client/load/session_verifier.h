// SessionVerifier: the CPU reference for one verified session. It keeps the session's whole
// history of k and v, per layer, as the tier received them (the tokens the session computed,
// and those it found cached, redrawn from their stream), and checks each output of a step
// against dense causal attention over that history in double precision
// (cache/kv/reference_attention.h), within the dtype's tolerance. So a tier that answers fast
// and wrong fails the run.
//
// Not thread-safe: one per verified session, used by its driver.
#ifndef KVTIER_CLIENT_LOAD_SESSION_VERIFIER_H_
#define KVTIER_CLIENT_LOAD_SESSION_VERIFIER_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "cache/kv/dtype.h"
#include "client/load/step_tensors.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class SessionVerifier {
 public:
  SessionVerifier(const v1::ModelSpec& model, DType dtype);

  int context_len() const { return context_len_; }

  // The next `count` tokens were found cached: their k/v are redrawn, position p from
  // kv_stream(p), for every layer.
  void AppendCached(int count, absl::FunctionRef<uint64_t(int position)> kv_stream);
  // The step's rows (the next step.rows() tokens) at `layer`: appends their k/v to the layer's
  // history and checks the output; DATA_LOSS naming the layer, position and element of the
  // first value out of tolerance.
  absl::Status CheckLayer(int layer, const StepTensors& step);
  // Every layer of the step was checked: its rows join the context.
  void EndStep(int rows) { context_len_ += rows; }

 private:
  const v1::ModelSpec model_;
  const DType dtype_;
  const int kv_width_;
  int context_len_ = 0;
  std::vector<std::vector<float>> k_, v_;  // [layer][context][num_kv_heads][head_dim]
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_SESSION_VERIFIER_H_
