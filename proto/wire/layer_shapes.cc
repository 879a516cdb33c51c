#include "proto/wire/layer_shapes.h"

#include "proto/wire/model_spec.h"

namespace kvtier {

v1::LayerShapes LayerShapesFor(const v1::ModelSpec& model, const v1::HeadRange& heads,
                               int num_tokens) {
  v1::LayerShapes shapes;
  shapes.set_num_tokens(num_tokens);
  shapes.set_num_q_heads(NumHeads(heads) * GqaGroupSize(model));
  shapes.set_num_kv_heads(NumHeads(heads));
  shapes.set_head_dim(model.head_dim());
  shapes.set_dtype(model.dtype());
  return shapes;
}

}  // namespace kvtier
