// Parameters and MACs of a model under a mask state, per layer and in total. A pruned channel
// removes the writer's filter (with its bias and BN channel) and the input channel of every
// reader, so a filter pruned in one layer also shrinks the next. MACs are multiply-accumulates
// of conv and linear layers per image (1 MAC = 2 FLOPs), as in Model::layer_costs().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pruning/mask_space.h"

namespace sp {

struct LayerAccount {
    std::string name;
    int64_t out_kept = 0, out_total = 0;  // output channels / neurons
    int64_t in_kept = 0, in_total = 0;    // input channels / features
    int64_t params = 0, params_dense = 0;  // weights, bias and the BN after it
    int64_t macs = 0, macs_dense = 0;
};

struct ModelAccount {
    std::vector<LayerAccount> layers;
    int64_t params = 0, params_dense = 0;  // every trainable parameter of the model
    int64_t macs = 0, macs_dense = 0;
    double params_kept() const { return params_dense ? static_cast<double>(params) / params_dense : 1.0; }
    double macs_kept() const { return macs_dense ? static_cast<double>(macs) / macs_dense : 1.0; }
};

// `state` (space.size() floats, 0/1) on the host.
ModelAccount account(const MaskSpace& space, const std::vector<float>& state);

}  // namespace sp
