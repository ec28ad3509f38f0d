// Network surgery: a masked model compacted into a smaller dense model of the same family,
// with the kept channels of every set (filters, the matching input channels of every consumer,
// BN channels, linear rows and columns) copied over; residual groups and concatenations
// respected. The compacted model's eval-mode outputs equal the masked model's when the masks
// gate after BN (see MaskSpaceOptions::gate_after_bn).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/models/model.h"

namespace sp {

// kept[s] = the kept channel indices (ascending) of channel set s, for every set of
// model.channel_sets() (a set missing from the map keeps all its channels). Returns a new
// model, allocated on the same device, whose weights and BN statistics are the kept slices.
std::unique_ptr<Model> compact_model(Model& model, const std::map<int, std::vector<int64_t>>& kept);

// The widths by set name that rebuild a compacted model (what a pruned checkpoint stores).
std::map<std::string, int64_t> model_widths(const Model& model);

}  // namespace sp
