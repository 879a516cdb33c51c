// The shapes of a step's per-layer tensors over one shard's head range, as the client states
// them in the plan and the shard checks them (kvtier.v1.LayerShapes). Pure functions.
#ifndef KVTIER_PROTO_WIRE_LAYER_SHAPES_H_
#define KVTIER_PROTO_WIRE_LAYER_SHAPES_H_

#include "kvtier/v1/attention.pb.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// The tensor shapes of a step of `num_tokens` new tokens over `heads`. `model` must be valid.
v1::LayerShapes LayerShapesFor(const v1::ModelSpec& model, const v1::HeadRange& heads,
                               int num_tokens);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_LAYER_SHAPES_H_
